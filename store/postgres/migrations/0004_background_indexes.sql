-- The retention tick walks executions_newest up to its cutoff (an
-- execution ends after it was created), so executions_finished, which
-- every finishing execution had to update, is no longer read.
-- The recovery tick keeps reading executions_unfinished.
DROP INDEX IF EXISTS executions_finished;
