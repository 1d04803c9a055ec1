/**
 * The order-router example's own code (examples/order-router/lib): its seeded
 * world, its four tools run through a tool registry, and the table its tool
 * service migrates, on PGlite.
 */
import { PGlite } from "@electric-sql/pglite";
import { createPgConfig } from "@electric-sql/pglite/node-postgres";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ToolCall } from "../../src/contracts";
import type { ToolRegistry } from "../../src/tools/registry";
import { REGIONS, checkStock, expectedRouting, findOrder, orderIds, warehousesIn, type InventoryCheck, type Order } from "../../examples/order-router/lib/data";
import { migrateOrderRoutes, OrderRoutes, orderRouterRegistry, type Queryable } from "../../testkit/orderRouter";

/** The back end's trouble, retryable, whichever copy of the package's error classes threw it. */
const UNAVAILABLE = { type: "unavailable", retryable: true };

let step = 0;
function call(tool: string, input: unknown, over: Partial<ToolCall> = {}): ToolCall {
  step += 1;
  const taskId = over.taskId ?? "task-1";
  return { taskId, agent: "order-router", step, tool, toolUseId: `toolu_${step}`, input, idempotencyKey: `${taskId}:${step}`, ...over };
}

describe("order-router example - its data", () => {
  const ids = orderIds();
  const outcomes = ids.map((id) => expectedRouting(id));
  const rankOf = (id: string, warehouse: string | null) => {
    const order = findOrder(id) as Order;
    return warehousesIn(order.region).findIndex((w) => w.warehouse_id === warehouse);
  };

  it("data - orders ORD-1000 to ORD-1999 exist with 1-3 lines of quantity 1-5", () => {
    expect(ids).toHaveLength(1000);
    expect(ids[0]).toBe("ORD-1000");
    expect(ids.at(-1)).toBe("ORD-1999");
    for (const id of ids) {
      const o = findOrder(id) as Order;
      expect(o.items.length).toBeGreaterThanOrEqual(1);
      expect(o.items.length).toBeLessThanOrEqual(3);
      for (const line of o.items) expect([1, 2, 3, 4, 5]).toContain(line.quantity);
      expect(warehousesIn(o.region).length).toBeGreaterThanOrEqual(3);
    }
  });

  it("data - at least 80% of orders can be filled, at most 10% by none, some only farther away", () => {
    const routed = outcomes.filter((o) => o.routed);
    const none = outcomes.filter((o) => o.reason === "no_warehouse_can_fill");
    const farther = routed.filter((o) => rankOf(o.order_id, o.warehouse_id) >= 1);
    expect(routed.length / ids.length).toBeGreaterThanOrEqual(0.8);
    expect(none.length / ids.length).toBeLessThanOrEqual(0.1);
    expect(none.length).toBeGreaterThan(0);
    expect(farther.length).toBeGreaterThan(50);
    expect(routed.some((o) => rankOf(o.order_id, o.warehouse_id) >= 2)).toBe(true);
  });

  it("data - warehouses are listed nearest first", () => {
    for (const region of REGIONS) {
      const d = warehousesIn(region).map((w) => w.distance_km);
      expect(d).toEqual([...d].sort((a, b) => a - b));
    }
  });

  it("data - an unknown order is expected unrouted as not found", () => {
    expect(expectedRouting("ORD-42")).toEqual({ order_id: "ORD-42", routed: false, warehouse_id: null, reason: "order_not_found" });
  });
});

describe("order-router example - its tools", () => {
  let pglite: PGlite;
  let pool: pg.Pool;
  let routes: OrderRoutes;
  let registry: ToolRegistry;

  beforeAll(async () => {
    pglite = new PGlite();
    pool = new pg.Pool(createPgConfig(pglite));
    await migrateOrderRoutes(pool);
    routes = new OrderRoutes(pool);
    registry = orderRouterRegistry(pool);
  });
  afterAll(async () => {
    await pool.end();
    await pglite.close();
  });
  beforeEach(async () => {
    await pool.query("DELETE FROM order_routes");
  });

  it("tools - lookup_order returns the order, or ok:false when it does not exist", async () => {
    const found = await registry.run(call("lookup_order", { order_id: "ORD-1042" }));
    expect(found).toMatchObject({ ok: true, output: { order_id: "ORD-1042", region: expect.any(String), items: expect.any(Array) } });
    const missing = await registry.run(call("lookup_order", { order_id: "ORD-5" }));
    expect(missing).toMatchObject({ ok: false, output: { error: "order ORD-5 not found" } });
  });

  it("tools - what the tools report agrees with expectedRouting for every order", async () => {
    for (const id of orderIds()) {
      const order = (await registry.run(call("lookup_order", { order_id: id }))).output as Order;
      const listed = (await registry.run(call("list_warehouses", { region: order.region }))).output as { warehouses: Array<{ warehouse_id: string }> };
      let chosen: string | null = null;
      for (const w of listed.warehouses) {
        const check = (await registry.run(call("check_inventory", { warehouse_id: w.warehouse_id, items: order.items }))).output as InventoryCheck;
        if (check.can_fill) {
          chosen = w.warehouse_id;
          break;
        }
      }
      expect({ id, chosen }).toEqual({ id, chosen: expectedRouting(id).warehouse_id });
    }
  });

  it("tools - check_inventory reports the shortfall per SKU", async () => {
    const id = orderIds().find((x) => expectedRouting(x).reason === "no_warehouse_can_fill") as string;
    const order = findOrder(id) as Order;
    const nearest = warehousesIn(order.region)[0]?.warehouse_id as string;
    const res = await registry.run(call("check_inventory", { warehouse_id: nearest, items: order.items }));
    expect(res.ok).toBe(true);
    expect(res.output).toEqual(checkStock(nearest, order.items));
    expect((res.output as InventoryCheck).shortfall.length).toBeGreaterThan(0);
  });

  it("tools - route_order re-executed with the same idempotency key has one effect and replays the confirmation", async () => {
    const id = orderIds().find((x) => expectedRouting(x).routed) as string;
    const warehouse = expectedRouting(id).warehouse_id as string;
    const first = await registry.run(call("route_order", { order_id: id, warehouse_id: warehouse }, { idempotencyKey: "task-7:4", taskId: "task-7" }));
    const again = await registry.run(call("route_order", { order_id: id, warehouse_id: warehouse }, { idempotencyKey: "task-7:4", taskId: "task-7" }));
    expect(first).toMatchObject({ ok: true, output: { order_id: id, warehouse_id: warehouse, replayed: false } });
    const a = first.output as { confirmation: string; routed_at: string };
    expect(again.output).toEqual({ ...a, order_id: id, warehouse_id: warehouse, replayed: true });
    expect(await routes.countEffects()).toBe(1);

    await registry.run(call("route_order", { order_id: id, warehouse_id: warehouse }, { idempotencyKey: "task-8:4", taskId: "task-8" }));
    expect(await routes.effectsByTask()).toEqual(new Map([["task-7", 1], ["task-8", 1]]));
  });

  it("tools - route_order to a warehouse that cannot fill the order is refused without an effect", async () => {
    const id = orderIds().find((x) => expectedRouting(x).reason === "no_warehouse_can_fill") as string;
    const order = findOrder(id) as Order;
    const res = await registry.run(call("route_order", { order_id: id, warehouse_id: warehousesIn(order.region)[0]?.warehouse_id }));
    expect(res).toMatchObject({ ok: false, output: { error: expect.stringContaining("cannot fill") } });
    expect(await routes.countEffects()).toBe(0);
  });

  it("tools - route_order with the database unreachable throws UnavailableError for the caller to retry", async () => {
    const down: Queryable = {
      query: async () => {
        throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
      },
    };
    const r = orderRouterRegistry(down);
    const id = orderIds().find((x) => expectedRouting(x).routed) as string;
    await expect(r.run(call("route_order", { order_id: id, warehouse_id: expectedRouting(id).warehouse_id }))).rejects.toMatchObject(UNAVAILABLE);
  });

  it("tools - a closed pool counts as the database being unavailable", async () => {
    const closed = new pg.Pool(createPgConfig(pglite));
    await closed.end();
    await expect(new OrderRoutes(closed).countEffects()).rejects.toMatchObject(UNAVAILABLE);
  });

  it("tools - specs show the model each tool's input schema", () => {
    const specs = registry.specs(["lookup_order", "route_order"]);
    expect(specs[0]?.input_schema).toMatchObject({ type: "object", required: ["order_id"], properties: { order_id: { type: "string" } } });
    expect(specs[1]?.description).toMatch(/once per order/);
  });
});
