-- Completion webhooks (src/webhooks/, src/store/webhooks.ts): where a task's end is
-- delivered, and the outbox the delivery loop works from.
--
-- `tasks.webhook` is `{"url", "secret_id"}` as intake admitted it (the URL checked, the
-- secret's name resolved); NULL for a task without one.
ALTER TABLE tasks ADD COLUMN webhook jsonb;

-- The outbox: one row per event to deliver. The row is written by the trigger below,
-- in the transaction of the write that ends the task, whichever write that is (a
-- planner's finish, a cancel, an approval's timeout): a committed end always has its
-- row, and a rolled-back one never does. `id` is the `webhook-id` header, the same on
-- every attempt; `payload` is the body, built once, so every attempt sends the same
-- bytes even after the task is redriven.
CREATE TABLE webhook_deliveries (
  id              text        PRIMARY KEY,
  task_id         uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  type            text        NOT NULL CHECK (type IN ('task.succeeded', 'task.failed', 'task.cancelled')),
  url             text        NOT NULL,
  -- NULL: the default secret at delivery time (intake names one whenever it can).
  secret_id       text,
  payload         text        NOT NULL,
  -- 'pending' until a 2xx ('delivered') or until retries give up ('failed').
  state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  -- Claims so far; each claim is one attempt, numbered by this count, which also fences
  -- the claimant's write of its outcome.
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  -- The claim of a delivery loop: set while an attempt is under way. A claim whose
  -- `claimed_until` passed without an outcome belongs to a loop that stopped; the next
  -- claim records that attempt as interrupted and sends again (at least once).
  claimed_by      text,
  claimed_at      timestamptz,
  claimed_until   timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz
);

-- The loop's search: due pending rows, earliest first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_task_idx ON webhook_deliveries (task_id, created_at);

-- Every attempt, as `GET /v1/tasks/{id}` shows it: when, how long, the status code or the error.
CREATE TABLE webhook_attempts (
  delivery_id text        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt     integer     NOT NULL CHECK (attempt > 0),
  started_at  timestamptz NOT NULL,
  -- NULL for an attempt whose loop stopped before it could say how long it took.
  duration_ms integer,
  status_code integer,
  error       text,
  PRIMARY KEY (delivery_id, attempt)
);

CREATE FUNCTION webhook_outbox_on_end() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ended timestamptz := COALESCE(NEW.finished_at, now());
  at_text text := to_char(ended AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
BEGIN
  -- json (not jsonb) keeps the keys in the order written: the body reads as documented.
  INSERT INTO webhook_deliveries (id, task_id, type, url, secret_id, payload)
  VALUES (
    'msg_' || replace(gen_random_uuid()::text, '-', ''),
    NEW.id,
    'task.' || NEW.status,
    NEW.webhook ->> 'url',
    NEW.webhook ->> 'secret_id',
    json_build_object(
      'type', 'task.' || NEW.status,
      'timestamp', at_text,
      'data', json_build_object(
        'id', NEW.id,
        'agent', NEW.agent,
        'status', NEW.status,
        'result', NEW.result,
        'error', NEW.error,
        'usage', json_build_object(
          'input_tokens', NEW.input_tokens,
          'output_tokens', NEW.output_tokens,
          'cache_read_input_tokens', NEW.cache_read_input_tokens,
          'cost_usd', NEW.cost_usd
        ),
        'prompt_version', NEW.prompt_version,
        'finished_at', at_text
      )
    )::text
  );
  RETURN NULL;
END
$$;

-- Any write that moves a task with a webhook into an end state. A repeated write of the same
-- end (a retried finish) changes no status and adds no row. Nothing in the function can fail
-- on a task's own data, so it never stands in the way of the write that ends the task.
CREATE TRIGGER tasks_webhook_outbox
  AFTER UPDATE OF status ON tasks
  FOR EACH ROW
  WHEN (NEW.webhook ->> 'url' IS NOT NULL AND NEW.status IN ('succeeded', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION webhook_outbox_on_end();
