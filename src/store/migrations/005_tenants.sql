-- Tenants: every task, dead letter and idempotency key belongs to one, and API
-- keys name the tenant they act for. Rows from before this migration belong to
-- tenant 'default' (what every caller is when authentication is off).

ALTER TABLE tasks ADD COLUMN tenant text NOT NULL DEFAULT 'default';
-- Per-tenant queued/running look-ups (fair scheduling, quotas), oldest first.
CREATE INDEX tasks_tenant_status_created_idx ON tasks (tenant, status, created_at);

-- Dead letters are listed per tenant, most recent first.
ALTER TABLE dead_letters ADD COLUMN tenant text NOT NULL DEFAULT 'default';
CREATE INDEX dead_letters_tenant_created_idx ON dead_letters (tenant, created_at);

-- An idempotency key is a tenant's own: another tenant using the same key gets
-- its own task and can never learn this one's id through it.
ALTER TABLE idempotency_keys ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant, key);

-- API keys: `cfk_<id>_<secret>`. Only the sha-256 of the secret is kept; the
-- key is shown once, at creation. A rotated key gets an `expires_at` (the
-- overlap); a revoked one a `revoked_at`. Either ends it.
CREATE TABLE api_keys (
  id          text        PRIMARY KEY,
  tenant      text        NOT NULL,
  scopes      text[]      NOT NULL,
  secret_hash bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant);
