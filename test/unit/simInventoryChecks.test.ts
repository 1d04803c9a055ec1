/**
 * simulated model - the order-router script honours "Check inventory N times"
 * in the system prompt: each warehouse's stock is checked N times with the same
 * input before it goes on, so a prompt change alone multiplies the tool's calls
 * (how a canary is tried against the sim) and the routing stays the same. Real
 * SDK against the sim's HTTP server, real tools, their side effect on PGlite.
 */
import Anthropic from "@anthropic-ai/sdk";
import { PGlite } from "@electric-sql/pglite";
import { createPgConfig } from "@electric-sql/pglite/node-postgres";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedRouting, findOrder, orderIds, warehousesIn, type Order } from "../../examples/order-router/lib/data";
import { inventoryChecksAsked, routes as orderRouterPolicies } from "../../examples/order-router/sim/policies";
import { startSimServer, type SimServer } from "../../src/sim";
import type { ToolRegistry } from "../../src/tools/registry";
import { migrateOrderRoutes, orderRouterRegistry } from "../../testkit/orderRouter";

const BASE_PROMPT = "You are the order-routing agent of a fulfilment network.";
const TOOL_NAMES = ["lookup_order", "list_warehouses", "check_inventory", "route_order"];

let pglite: PGlite;
let pool: pg.Pool;
let registry: ToolRegistry;
let sim: SimServer;
let sdk: Anthropic;

beforeAll(async () => {
  pglite = new PGlite();
  pool = new pg.Pool(createPgConfig(pglite));
  await migrateOrderRoutes(pool);
  registry = orderRouterRegistry(pool);
  sim = await startSimServer({ policies: orderRouterPolicies });
  sdk = new Anthropic({ apiKey: "test", baseURL: sim.url, maxRetries: 0 });
});

afterAll(async () => {
  await sim?.close();
  await pool?.end();
  await pglite?.close();
});

interface ToolCallMade {
  name: string;
  input: unknown;
}

/** The agent loop's client side under `system`: every tool_use run with the real tools; the calls made and the answer. */
async function route(system: string, orderId: string, taskId: string): Promise<{ calls: ToolCallMade[][]; answer: Record<string, unknown> }> {
  const tools = registry.specs(TOOL_NAMES) as Anthropic.Tool[];
  const messages: Anthropic.MessageParam[] = [{ role: "user", content: `Route order ${orderId}.` }];
  const calls: ToolCallMade[][] = [];
  for (let turn = 1; turn <= 30; turn++) {
    const msg = await sdk.messages.create({ model: "claude-sonnet-4-6", max_tokens: 2048, system, tools, messages });
    messages.push({ role: "assistant", content: msg.content });
    const uses = msg.content.filter((b): b is Anthropic.ToolUseBlock => b.type === "tool_use");
    if (uses.length === 0) return { calls, answer: JSON.parse(msg.content.map((b) => (b.type === "text" ? b.text : "")).join("")) as Record<string, unknown> };
    calls.push(uses.map((u) => ({ name: u.name, input: u.input })));
    const results = await Promise.all(
      uses.map(async (u, i): Promise<Anthropic.ToolResultBlockParam> => {
        const step = turn * 10 + i;
        const r = await registry.run({ taskId, agent: "order-router", step, tool: u.name, toolUseId: u.id, input: u.input, idempotencyKey: `${taskId}:${step}` });
        return { type: "tool_result", tool_use_id: u.id, content: JSON.stringify(r.output), ...(r.ok ? {} : { is_error: true }) };
      }),
    );
    messages.push({ role: "user", content: results });
  }
  throw new Error("the conversation did not end");
}

const inventoryCalls = (calls: ToolCallMade[][]) => calls.flat().filter((c) => c.name === "check_inventory");

/** An order the policy routes to the warehouse at `rank` of its region (nearest first). */
function routedAtRank(rank: number): string {
  const id = orderIds().find((x) => {
    const e = expectedRouting(x);
    return e.routed && warehousesIn((findOrder(x) as Order).region).findIndex((w) => w.warehouse_id === e.warehouse_id) === rank;
  });
  if (id === undefined) throw new Error(`no order routed at rank ${rank}`);
  return id;
}

describe("simulated model - order router: Check inventory N times", () => {
  it("sim - the instruction is read from the system prompt, any case, N 1-9; anything else asks for one check", () => {
    const asked = (system: string) => inventoryChecksAsked({ model: "m", max_tokens: 1, system, messages: [] });
    expect(asked(`${BASE_PROMPT} Check inventory 3 times before routing.`)).toBe(3);
    expect(asked("CHECK INVENTORY 9 TIMES")).toBe(9);
    expect(asked("check_inventory 2 times")).toBe(2);
    expect(asked(BASE_PROMPT)).toBe(1);
    expect(asked("Check inventory 0 times")).toBe(1);
    expect(asked("Check inventory 10 times")).toBe(1);
    expect(asked("Check inventory three times")).toBe(1);
  });

  it("sim - 'Check inventory 3 times' triples the inventory checks, each repeated with the same input, and routes the same", async () => {
    const id = routedAtRank(1);
    const plain = await route(BASE_PROMPT, id, "task-plain");
    const tripled = await route(`${BASE_PROMPT}\nCheck inventory 3 times before you decide.`, id, "task-tripled");

    const once = inventoryCalls(plain.calls);
    const thrice = inventoryCalls(tripled.calls);
    expect(once.length).toBeGreaterThan(0);
    expect(thrice).toHaveLength(once.length * 3);
    // The same warehouses with the same input, each three times.
    const key = (c: ToolCallMade) => JSON.stringify(c.input);
    const counts = new Map<string, number>();
    for (const c of thrice) counts.set(key(c), (counts.get(key(c)) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(once.map(key).sort());
    for (const n of counts.values()) expect(n).toBe(3);
    // Two more turns of checks, before anything else is called.
    expect(tripled.calls.map((t) => t.map((c) => c.name)[0])).toEqual([
      "lookup_order",
      "list_warehouses",
      "check_inventory",
      "check_inventory",
      "check_inventory",
      "route_order",
    ]);
    expect(tripled.answer).toMatchObject({ order_id: id, routed: true, warehouse_id: plain.answer.warehouse_id });
    expect(plain.answer).toMatchObject({ order_id: id, routed: true, warehouse_id: expectedRouting(id).warehouse_id });
  });

  it("sim - 'Check inventory 1 times' and no instruction play the same conversation", async () => {
    const id = routedAtRank(0);
    const plain = await route(BASE_PROMPT, id, "task-a");
    const once = await route(`${BASE_PROMPT} Check inventory 1 times.`, id, "task-b");
    expect(once.calls).toEqual(plain.calls);
  });
});
