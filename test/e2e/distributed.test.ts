/**
 * distributed - each role in its own OS process over the real NATS, Redis and
 * Postgres: api+intake(+metrics), planner ×2, executor, rate-gateway and
 * checkpoint. 50 tasks submitted over HTTP all succeed, each routing effect is
 * recorded exactly once, and /steps shows the LLM and tool steps in order.
 * Authentication is on, as distributed mode has it by default: the api process
 * verifies keys through the checkpoint process, and another tenant sees nothing.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { bearer, issueTestKey, TEST_ADMIN_KEY } from "../../testkit/auth";
import { getJson, startRoleProcesses, stopAll, submitTask, waitForTasks, type NodeProcess } from "../../testkit/cluster";
import { createScratch, hasService, type Scratch } from "../helpers/services";

const TASKS = 50;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("distributed mode - one OS process per role", () => {
  let scratch: Scratch;
  const nodes: NodeProcess[] = [];
  let base: string;
  let auth: Record<string, string>;

  beforeAll(async () => {
    scratch = await createScratch("e2edist");
    base = await startRoleProcesses(nodes, (services) => ({
      ...scratch.env(services),
      CLAWFLEET_AUTH: "on",
      CLAWFLEET_ADMIN_KEY: TEST_ADMIN_KEY,
      CLAWFLEET_SIM_LATENCY_MS: "5",
    }));
    auth = bearer(await issueTestKey(base, { tenant: "acme" }));
  }, 120_000);

  afterAll(async () => {
    await stopAll(nodes);
    await scratch?.remove();
  }, 60_000);

  it("runs 50 tasks across the processes, each decided right and routed exactly once", async () => {
    const started = Date.now();
    const orders = orderIds().slice(100, 100 + TASKS);
    const submitted = await Promise.all(orders.map((o) => submitTask(base, { agent: "order-router", input: { order_id: o } }, auth)));
    expect(submitted.every((s) => s.status === 202)).toBe(true);
    const ids = submitted.map((s) => s.id);
    const done = await waitForTasks(base, ids, 120_000, auth);
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
      auth,
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

  it("answers 401 without a key, and another tenant's key finds none of these tasks", async () => {
    const s = await submitTask(base, { agent: "order-router", input: { order_id: orderIds()[0] } }, auth);
    expect(s.status).toBe(202);
    expect((await fetch(`${base}/v1/tasks/${s.id}`)).status).toBe(401);
    const other = bearer(await issueTestKey(base, { tenant: "globex" }));
    const r = await fetch(`${base}/v1/tasks/${s.id}`, { headers: other });
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: { type: string } }).error.type).toBe("task_not_found");
    expect((await fetch(`${base}/v1/tasks/${s.id}`, { headers: auth })).status).toBe(200);
  });

  it("reports readiness per role on every process", async () => {
    for (const n of nodes) {
      const r = await fetch(`http://127.0.0.1:${n.port}/health/ready`);
      expect(r.status, n.name).toBe(200);
    }
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/clawfleet_tasks\{[^}]*status="succeeded"[^}]*\} (\d+)/);
  });
});
