-- Approval gates: a tool call an agent's `approval.tools` names waits for an
-- operator. One row per gated call (task, step): the exact tool_use the model
-- asked for, when it was asked and until when a decision may come. `decision`
-- is written once: 'approve' or 'reject' by an operator, 'timeout' by the
-- reaper past the deadline (the task then fails and the call is never made).
-- The task itself waits in status 'awaiting_approval', neither claimable nor
-- reaped. A redriven task asks again: a 'timeout' row is reset, never another.
CREATE TABLE approvals (
  task_id      uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  step         integer     NOT NULL CHECK (step > 0),
  tool_use_id  text        NOT NULL,
  tool         text        NOT NULL,
  input        jsonb       NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  deadline     timestamptz NOT NULL,
  decision     text        CHECK (decision IN ('approve', 'reject', 'timeout')),
  reason       text,
  decided_by   text,
  decided_at   timestamptz,
  PRIMARY KEY (task_id, step),
  CHECK ((decision IS NULL) = (decided_at IS NULL))
);

-- The pending list (oldest request first) and the reaper's search for timed-out ones.
CREATE INDEX approvals_pending_idx ON approvals (requested_at) WHERE decision IS NULL;
CREATE INDEX approvals_deadline_idx ON approvals (deadline) WHERE decision IS NULL;
