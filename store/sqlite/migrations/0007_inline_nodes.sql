-- The node states of an execution journalled finished when it was created
-- (a short workflow run at once), in its row: one line per node in
-- workflow order, as codec.AppendNodeLine writes them. Such an execution
-- has no rows in execution_nodes and an empty node_ids. '' for every other
-- execution, whose node states are rows as before.
ALTER TABLE executions ADD COLUMN nodes TEXT NOT NULL DEFAULT '';
