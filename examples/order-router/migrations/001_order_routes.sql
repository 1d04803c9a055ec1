-- The order-router's side effect: one row per routing, keyed by the tool call's
-- idempotency key (`taskId:step`), so re-executing a step after a crash finds
-- the row instead of routing the order again.
--
-- IF NOT EXISTS on purpose: databases of Clawfleet 0.1 have this very table from
-- Clawfleet's own (since retired) migration 002; there this file adopts it,
-- rows and all, and a routing recorded before the upgrade still dedupes.
CREATE TABLE IF NOT EXISTS order_routes (
  idempotency_key text PRIMARY KEY,
  task_id         text NOT NULL,
  order_id        text NOT NULL,
  warehouse_id    text NOT NULL,
  confirmation    text NOT NULL,
  routed_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS order_routes_task_id_idx ON order_routes (task_id);
