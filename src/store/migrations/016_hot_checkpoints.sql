-- A checkpoint's update of its task row (steps, tokens, cost) changes no indexed column, so
-- Postgres can write it as a heap-only (HOT) update when the row's page has room: the new
-- row version goes on the same page and none of the table's eight indexes gets a new entry.
-- Before, every checkpoint moved `updated_at` (the key of tasks_running_idx), and every
-- model turn's also moved `cost_usd` (carried in tasks_agent_created_cost_idx), so each one
-- wrote an entry into every index on `tasks`.
--
-- * The daily cost cap's index (migration 009) no longer carries cost_usd: the cap's sum
--   reads it from the rows of the agent's tasks of the day. Each intake reads the sum about
--   once a second per capped agent (src/budgets/dailyCap.ts); bench/checkpointRow.ts times
--   it on both schemas.
-- * A checkpoint moves `updated_at` only once it is 5 s old (src/store/checkpointBatch.ts).
--   Its one reader is the reaper's order of running tasks, stalest first, 500 a sweep: a task
--   whose planner died stops moving it, and with more than 500 running it reaches the
--   stalest at most 5 s later than before.
-- * New rows leave a fifth of each page free, so a row's next version fits beside it.
--   Rows already stored keep their pages until the table is rewritten.
--
-- The new index is built first, under the migration's lock: CREATE INDEX blocks writes to
-- `tasks` (not reads) while it reads the table, so on a large table run this migration in a
-- quiet moment. The old index is dropped last, which holds the table for a moment only.
CREATE INDEX tasks_agent_created_idx ON tasks (agent, created_at);
DROP INDEX tasks_agent_created_cost_idx;

ALTER TABLE tasks SET (fillfactor = 80);
