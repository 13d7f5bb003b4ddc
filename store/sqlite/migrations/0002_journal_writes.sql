-- Cheaper journal writes.
--
-- The execution indexes ascend: new executions (later create times) are
-- appended at their right edge, where descending indexes took every insert
-- at the left edge and split pages there. SQLite reads them backwards for
-- the newest-first lists.
DROP INDEX executions_newest;
DROP INDEX executions_workflow_newest;
CREATE INDEX executions_newest ON executions (create_time, id);
CREATE INDEX executions_workflow_newest ON executions (workflow, create_time, id);

-- Node states and events no longer reference executions with foreign
-- keys, whose checks cost a lookup per row and a statement journal per
-- multi-row statement. WriteJournal checks once per batch that the
-- executions it writes to exist, and DeleteExecutionsBefore deletes the
-- rows of the executions it deletes.
CREATE TABLE execution_nodes_v2 (
    execution_id TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    position     INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    start_time   INTEGER NOT NULL,
    end_time     INTEGER NOT NULL,
    error        TEXT,
    result       TEXT,
    PRIMARY KEY (execution_id, node_id)
) WITHOUT ROWID;
INSERT INTO execution_nodes_v2 (execution_id, node_id, position, status, attempts, start_time, end_time, error, result)
    SELECT execution_id, node_id, position, status, attempts, start_time, end_time, error, result FROM execution_nodes;
DROP TABLE execution_nodes;
ALTER TABLE execution_nodes_v2 RENAME TO execution_nodes;

CREATE TABLE execution_events_v2 (
    execution_id TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    time         INTEGER NOT NULL,
    kind         INTEGER NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
INSERT INTO execution_events_v2 (execution_id, seq, time, kind, body)
    SELECT execution_id, seq, time, kind, body FROM execution_events;
DROP TABLE execution_events;
ALTER TABLE execution_events_v2 RENAME TO execution_events;
