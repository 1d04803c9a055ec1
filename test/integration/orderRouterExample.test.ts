/**
 * order-router example - served by a node the way a user's project is: its
 * agent file from its own prompts folder, its tools a Moleculer service with
 * the `ClawfleetTools` mixin (CLAWFLEET_USER_SERVICES), its table created by the
 * service's own migration, its script for the simulated model plugged in
 * (CLAWFLEET_SIM_POLICIES). And a database that applied Clawfleet's former
 * migration 002 (the same table) upgrades without losing a routing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { loadConfig } from "../../src/config";
import { checksumOf, migrate } from "../../src/store/migrate";
import { openStore } from "../../src/store/pgTaskStore";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { EXAMPLES_ENV, ORDER_ROUTER_SERVICE_NAME } from "../../testkit/examples";
import { migrateOrderRoutes, OrderRoutes } from "../../testkit/orderRouter";
import { uniqueId } from "../helpers/services";

/** Clawfleet 0.1's `src/store/migrations/002_order_routes.sql`, as databases of that version applied it. */
const RETIRED_002 = `-- The order-router's side effect: one row per routing, keyed by the tool call's
-- idempotency key (\`taskId:step\`), so re-executing a step after a crash finds
-- the row instead of routing the order again.
CREATE TABLE IF NOT EXISTS order_routes (
  idempotency_key text PRIMARY KEY,
  task_id         text NOT NULL,
  order_id        text NOT NULL,
  warehouse_id    text NOT NULL,
  confirmation    text NOT NULL,
  routed_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS order_routes_task_id_idx ON order_routes (task_id);
`;

describe("order-router example - the retired migration 002", () => {
  it("upgrade - a database that applied 002 keeps its routings: Clawfleet ignores the retired history row, the tool service adopts the table", async () => {
    const opened = await openStore({ dataDir: "memory://" });
    try {
      // The database as Clawfleet 0.1 left it: 002 applied, one order routed.
      await opened.pool.query(RETIRED_002);
      await opened.pool.query("INSERT INTO schema_migrations (name, checksum) VALUES ('002_order_routes.sql', $1)", [checksumOf(RETIRED_002)]);
      const id = orderIds().find((o) => expectedRouting(o).routed) as string;
      const warehouse = expectedRouting(id).warehouse_id as string;
      const before = await new OrderRoutes(opened.pool).route({ idempotencyKey: "old-task:5", taskId: "old-task", orderId: id, warehouseId: warehouse });

      // This version: Clawfleet's own migrations find nothing to do and refuse nothing ...
      expect(await migrate(opened.pool)).toEqual({ applied: [] });
      // ... and the service's first migration adopts the table as it is.
      expect(await migrateOrderRoutes(opened.pool)).toEqual({ applied: ["001_order_routes.sql"] });
      const { rows } = await opened.pool.query<{ namespace: string; name: string }>("SELECT namespace, name FROM tool_service_migrations");
      expect(rows).toEqual([{ namespace: ORDER_ROUTER_SERVICE_NAME, name: "001_order_routes.sql" }]);

      // The step routed before the upgrade, executed again after it, still has one effect.
      const again = await new OrderRoutes(opened.pool).route({ idempotencyKey: "old-task:5", taskId: "old-task", orderId: id, warehouseId: warehouse });
      expect(again).toEqual({ ...before, replayed: true });
      expect(await new OrderRoutes(opened.pool).countEffects()).toBe(1);
    } finally {
      await opened.close();
    }
  });
});

describe("order-router example - served by an embedded node", () => {
  let node: ClawfleetNode;

  beforeAll(async () => {
    node = await startNode(loadConfig({ ...EXAMPLES_ENV, PORT: "0", CLAWFLEET_DATA_DIR: "memory://", CLAWFLEET_NAMESPACE: uniqueId("orx"), LOG_LEVEL: "error" }));
  }, 60_000);

  afterAll(async () => {
    await node?.stop();
  });

  it("example - its tool service publishes the four tools, route_order a side effect, and migrated its table", async () => {
    const services = node.broker.registry.getServiceList({ onlyAvailable: true }) as unknown as Array<{ name: string; metadata: { clawfleet?: { tools: Array<{ name: string; sideEffect: boolean }> } } }>;
    const tools = services.find((s) => s.name === ORDER_ROUTER_SERVICE_NAME)?.metadata.clawfleet?.tools ?? [];
    expect(tools.map((t) => [t.name, t.sideEffect])).toEqual([
      ["lookup_order", false],
      ["list_warehouses", false],
      ["check_inventory", false],
      ["route_order", true],
    ]);
    const pool = (await node.resources.database()).pool;
    const { rows } = await pool.query<{ name: string }>("SELECT name FROM tool_service_migrations WHERE namespace = $1", [ORDER_ROUTER_SERVICE_NAME]);
    expect(rows.map((r) => r.name)).toEqual(["001_order_routes.sql"]);
  });

  it("example - route_order dedupes on the call's idempotency key", async () => {
    const id = orderIds().find((o) => expectedRouting(o).routed) as string;
    const params = { order_id: id, warehouse_id: expectedRouting(id).warehouse_id };
    const meta = { idempotencyKey: "task-x:4", taskId: "task-x", step: 4, agent: "order-router" };
    type Routed = { replayed: boolean; confirmation: string };
    const first = await node.broker.call<Routed, typeof params>(`${ORDER_ROUTER_SERVICE_NAME}.route_order`, params, { meta });
    const again = await node.broker.call<Routed, typeof params>(`${ORDER_ROUTER_SERVICE_NAME}.route_order`, params, { meta });
    expect([first.replayed, again.replayed]).toEqual([false, true]);
    expect(again.confirmation).toBe(first.confirmation);
  });

  it("example - its agent routes orders as expectedRouting says, one routing per routed task", async () => {
    const ids = [orderIds().find((o) => expectedRouting(o).routed), orderIds().find((o) => expectedRouting(o).reason === "no_warehouse_can_fill"), "ORD-99999"] as string[];
    const tasks = new Map<string, string>();
    for (const order of ids) {
      const r = await node.broker.call<{ id: string }, { body: unknown }>("intake.submit", { body: { agent: "order-router", input: { order_id: order } } });
      tasks.set(r.id, order);
    }
    const pool = (await node.resources.database()).pool;
    for (const [taskId, order] of tasks) {
      await expect
        .poll(async () => (await node.broker.call<{ status: string }, { id: string }>("checkpoint.getTask", { id: taskId })).status, { timeout: 30_000 })
        .toBe("succeeded");
      const task = await node.broker.call<{ result: unknown }, { id: string }>("checkpoint.getTask", { id: taskId });
      const expected = expectedRouting(order);
      expect(task.result).toMatchObject({ order_id: order, routed: expected.routed, warehouse_id: expected.warehouse_id });
      const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM order_routes WHERE task_id = $1", [taskId]);
      expect(rows[0]?.n).toBe(expected.routed ? 1 : 0);
    }
  });
});
