-- A checkpoint's update of its task row (steps, tokens, cost) changes no indexed column, so
-- Postgres writes it as a heap-only (HOT) update: the new row version goes on the same page
-- and none of the table's eight indexes gets a new entry. Before, every checkpoint moved
-- `cost_usd` (carried in tasks_agent_created_cost_idx) and `updated_at` (the key of
-- tasks_running_idx), and each one wrote an entry into every index on `tasks`.
--
-- * The daily cost cap's index (migration 009) no longer carries cost_usd: the cap's sum
--   reads it from the row. The sum covers one agent's tasks of the day, whose rows are still
--   changing, so their pages are seldom all-visible and the index-only scan it was made for
--   fetched most rows anyway; intake reads the sum about once a second per capped agent.
-- * A checkpoint moves `updated_at` only once it is 5 s old (src/store/checkpointBatch.ts).
--   Its one reader is the reaper's order of running tasks, stalest first, 500 a sweep: a task
--   whose planner died stops moving it, and with more than 500 running it reaches the
--   stalest at most 5 s later than before.
-- * New rows leave a fifth of each page free, so a row's next version fits beside it.
--   Rows already stored keep their pages until the table is rewritten.
--
-- The cap's index is rebuilt under the migration's lock (CREATE INDEX blocks writes to
-- `tasks` while it reads the table): on a large table, run this migration in a quiet moment.
DROP INDEX tasks_agent_created_cost_idx;
CREATE INDEX tasks_agent_created_idx ON tasks (agent, created_at);

ALTER TABLE tasks SET (fillfactor = 80);
