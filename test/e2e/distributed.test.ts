/**
 * distributed - each role in its own OS process over the real NATS, Redis and
 * Postgres: api+intake(+metrics), planner ×2, executor, rate-gateway and
 * checkpoint. 50 tasks submitted over HTTP all succeed, each routing effect is
 * recorded exactly once, and /steps shows the LLM and tool steps in order.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { getJson, startRoleProcesses, stopAll, submitTask, waitForTasks, type NodeProcess } from "../../testkit/cluster";
import { createScratch, hasService, type Scratch } from "../helpers/services";

const TASKS = 50;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("distributed mode - one OS process per role", () => {
  let scratch: Scratch;
  const nodes: NodeProcess[] = [];
  let base: string;

  beforeAll(async () => {
    scratch = await createScratch("e2edist");
    base = await startRoleProcesses(nodes, (services) => ({ ...scratch.env(services), CLAWFLEET_SIM_LATENCY_MS: "5" }));
  }, 120_000);

  afterAll(async () => {
    await stopAll(nodes);
    await scratch?.remove();
  }, 60_000);

  it("runs 50 tasks across the processes, each decided right and routed exactly once", async () => {
    const started = Date.now();
    const orders = orderIds().slice(100, 100 + TASKS);
    const submitted = await Promise.all(orders.map((o) => submitTask(base, { agent: "order-router", input: { order_id: o } })));
    expect(submitted.every((s) => s.status === 202)).toBe(true);
    const ids = submitted.map((s) => s.id);
    const done = await waitForTasks(base, ids, 120_000);
    const elapsed = Date.now() - started;
    process.stdout.write(`distributed: ${TASKS} tasks reached a final state in ${elapsed} ms\n`);
    expect(done.size).toBe(TASKS);

    const routed: string[] = [];
    orders.forEach((order, i) => {
      const t = done.get(ids[i] as string);
      expect(t?.status, `${order}: ${JSON.stringify(t?.error)}`).toBe("succeeded");
      const want = expectedRouting(order);
      expect(t?.result).toMatchObject({ order_id: order, routed: want.routed, warehouse_id: want.warehouse_id });
      if (want.routed) routed.push(ids[i] as string);
    });

    const client = new pg.Client({ connectionString: scratch.db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ task_id: string; n: number }>("SELECT task_id, count(*)::int AS n FROM order_routes GROUP BY task_id");
      expect(rows).toHaveLength(routed.length);
      for (const r of rows) expect(r.n).toBe(1);
      expect(new Set(rows.map((r) => r.task_id))).toEqual(new Set(routed));
    } finally {
      await client.end();
    }

    // Both planners took work: the consumer group shares the queue.
    const workers = new Set<string>();
    for (const n of nodes.filter((x) => x.name.startsWith("planner"))) if (n.output().includes('"tool.choice"')) workers.add(n.name);
    expect(workers.size).toBe(2);

    const { steps } = await getJson<{ steps: Array<{ step: number; kind: string; tool?: string; model?: string; tier?: string }> }>(
      `${base}/v1/tasks/${routed[0]}/steps`,
    );
    expect(steps.map((s) => s.step)).toEqual(steps.map((_, i) => i + 1));
    // Step 1 is the tiered router's classification; the agent's own loop starts at step 2.
    expect(steps[0]).toMatchObject({ kind: "llm", tier: "classify" });
    const loop = steps.slice(1);
    expect(loop.map((s) => (s.kind === "llm" ? "llm" : s.tool))).toEqual([
      "llm",
      "lookup_order",
      "llm",
      "list_warehouses",
      "llm",
      ...loop.slice(5).map((s) => (s.kind === "llm" ? "llm" : s.tool)),
    ]);
    expect(steps.filter((s) => s.tool === "route_order")).toHaveLength(1);
    expect(steps.at(-1)?.kind).toBe("llm");
  }, 180_000);

  it("reports readiness per role on every process", async () => {
    for (const n of nodes) {
      const r = await fetch(`http://127.0.0.1:${n.port}/health/ready`);
      expect(r.status, n.name).toBe(200);
    }
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/clawfleet_tasks\{[^}]*status="succeeded"[^}]*\} (\d+)/);
  });
});
