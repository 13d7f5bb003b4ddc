-- Fewer rows per journal write (see the package doc).
--
-- node_ids: the ids of the execution's nodes in workflow order, as a JSON
-- array ('' for executions journalled before this migration, whose node
-- rows all exist). A node without a row in execution_nodes is PENDING.
--
-- events: the first events of the execution (seq <= 16) with small bodies,
-- each as one line "seq TAB time TAB kind TAB body", in the order written;
-- other events are rows of execution_events.
--
-- event_seqs: a bit mask of the seqs <= 16 journalled, wherever they are
-- stored (bit seq-1), against which a batch checks that it journals no
-- seq twice.
ALTER TABLE executions ADD COLUMN node_ids TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN events TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN event_seqs INTEGER NOT NULL DEFAULT 0;
-- Executions journalled before this migration keep their events as rows:
-- mark their seqs <= 16 as taken.
UPDATE executions SET event_seqs = (SELECT coalesce(sum(1 << (seq - 1)), 0) FROM execution_events e
    WHERE e.execution_id = executions.id AND e.seq BETWEEN 1 AND 16);
