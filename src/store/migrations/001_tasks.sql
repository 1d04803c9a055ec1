-- The system of record: tasks, their checkpoints, idempotency keys and dead letters.
-- Applied once by src/store/migrate.ts. Never edit this file once released: append 00N_*.sql.

CREATE TABLE tasks (
  id                          uuid PRIMARY KEY,
  agent                       text        NOT NULL,
  status                      text        NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled')),
  input                       jsonb       NOT NULL,
  priority                    text        NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
  metadata                    jsonb       NOT NULL DEFAULT '{}'::jsonb,
  result                      jsonb,
  error                       jsonb,
  -- Lease acquisitions so far; the planner dead-letters a task past its maximum.
  attempts                    integer     NOT NULL DEFAULT 0,
  -- Highest checkpointed step number.
  steps                       integer     NOT NULL DEFAULT 0,
  input_tokens                bigint      NOT NULL DEFAULT 0,
  output_tokens               bigint      NOT NULL DEFAULT 0,
  cache_read_input_tokens     bigint      NOT NULL DEFAULT 0,
  cache_creation_input_tokens bigint      NOT NULL DEFAULT 0,
  -- numeric, not float: sums of many small per-step costs must not drift.
  cost_usd                    numeric     NOT NULL DEFAULT 0,
  prompt_version              text        NOT NULL,
  -- Fencing token: bumped by every claim; every worker write must carry the current value.
  fence                       bigint      NOT NULL DEFAULT 0,
  lease_owner                 text,
  created_at                  timestamptz NOT NULL DEFAULT now(),
  started_at                  timestamptz,
  finished_at                 timestamptz,
  updated_at                  timestamptz NOT NULL DEFAULT now(),
  -- When the last wake-up was published: the reaper re-publishes for queued tasks whose wake-up is old.
  wakeup_at                   timestamptz NOT NULL DEFAULT now()
);

-- Reaper: stale queued tasks, oldest wake-up first. Leading `status` also serves countByStatus.
CREATE INDEX tasks_status_wakeup_idx ON tasks (status, wakeup_at);
-- Reaper: running tasks whose lease may have lapsed; few rows, so a partial index stays small.
CREATE INDEX tasks_running_idx ON tasks (updated_at) WHERE status = 'running';

-- One row per checkpoint: the delta a step adds (one LLM response or one tool result),
-- never the whole conversation, so storage grows linearly with steps.
CREATE TABLE steps (
  task_id        uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  step           integer     NOT NULL CHECK (step >= 0),
  kind           text        NOT NULL CHECK (kind IN ('llm', 'tool')),
  schema_version integer     NOT NULL,
  -- The fencing token of the writer, for forensics on takeovers.
  fence          bigint      NOT NULL,
  data           jsonb       NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task_id, step)
);

-- A checkpoint is history: resumption replays it, so it must never change after the fact.
CREATE FUNCTION steps_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'checkpoints are append-only: step % of task % cannot be updated', OLD.step, OLD.task_id
    USING ERRCODE = 'object_not_in_prerequisite_state';
END
$$;
CREATE TRIGGER steps_no_update BEFORE UPDATE ON steps FOR EACH ROW EXECUTE FUNCTION steps_are_immutable();

CREATE TABLE idempotency_keys (
  key        text        PRIMARY KEY,
  -- Deferred: createTask claims the key before inserting the task, in one transaction,
  -- so a race loser never writes a task at all.
  task_id    uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- For purging keys past their 24 h window.
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE dead_letters (
  task_id    uuid        PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
  agent      text        NOT NULL,
  error      jsonb       NOT NULL,
  attempts   integer     NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_created_idx ON dead_letters (created_at);
