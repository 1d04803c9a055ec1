-- Budgets that hold (src/budgets). `budgets`: the effective per-task budgets, fixed at
-- submit (the agent file's, lowered by the submit's), so every attempt, resume and redrive
-- runs under the same ones; NULL for a task stored before this migration (it runs under
-- its agent's). `budget_exhausted`: the budget that ended the task, when one did.
ALTER TABLE tasks ADD COLUMN budgets jsonb, ADD COLUMN budget_exhausted text;

-- An agent's daily cost cap: the sum of cost_usd over its tasks created since 00:00 UTC,
-- read by intake (cached about a second) for agents with `max_daily_cost_usd`. The range
-- scan stays within one agent's tasks of the day; cost_usd rides along in the index.
CREATE INDEX tasks_agent_created_cost_idx ON tasks (agent, created_at) INCLUDE (cost_usd);
