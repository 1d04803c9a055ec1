-- The side-effect ledger: one row per call of a tool marked `sideEffect`, keyed
-- by the call's idempotency key (`taskId:step`). The executor writes "started"
-- before it calls the tool (a new row, or `starts + 1` on an existing one whose
-- outcome is still unknown) and the outcome after it (first one wins). A row
-- with an outcome answers every later call of the same step without calling
-- the tool; a row without one after a timeout or a crash means "ask the tool
-- again with the same key", `starts - 1` times unknown so far.
CREATE TABLE IF NOT EXISTS tool_calls (
  idempotency_key text PRIMARY KEY,
  task_id         text NOT NULL,
  step            integer NOT NULL,
  tool            text NOT NULL,
  starts          integer NOT NULL DEFAULT 1,
  -- {"ok": bool, "output": any}; null while the outcome is unknown.
  outcome         jsonb,
  started_at      timestamptz NOT NULL DEFAULT now(),
  last_started_at timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz
);

CREATE INDEX IF NOT EXISTS tool_calls_task_id_idx ON tool_calls (task_id);
