-- Webhook secrets belong to tenants (src/webhooks/settings.ts): a delivery is signed only
-- with a secret of its task's tenant, so one tenant cannot have events signed with
-- another's secret and replay them to that tenant's receiver. The outbox row carries the
-- tenant the secret is looked up for, and the body names it, for a receiver that several
-- tenants share. Deliveries already in the outbox take their task's tenant: one of another
-- tenant than `default` is then signed with that tenant's secret, or not at all.
ALTER TABLE webhook_deliveries ADD COLUMN tenant text NOT NULL DEFAULT 'default';
UPDATE webhook_deliveries d SET tenant = t.tenant FROM tasks t WHERE t.id = d.task_id AND t.tenant <> 'default';

CREATE OR REPLACE FUNCTION webhook_outbox_on_end() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ended timestamptz := COALESCE(NEW.finished_at, now());
  at_text text := to_char(ended AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
BEGIN
  -- json (not jsonb) keeps the keys in the order written: the body reads as documented.
  INSERT INTO webhook_deliveries (id, task_id, tenant, type, url, secret_id, payload)
  VALUES (
    'msg_' || replace(gen_random_uuid()::text, '-', ''),
    NEW.id,
    NEW.tenant,
    'task.' || NEW.status,
    NEW.webhook ->> 'url',
    NEW.webhook ->> 'secret_id',
    json_build_object(
      'type', 'task.' || NEW.status,
      'timestamp', at_text,
      'data', json_build_object(
        'id', NEW.id,
        'tenant', NEW.tenant,
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
