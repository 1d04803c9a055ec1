/**
 * embedded - the whole path in one `clawfleet start` process on PGlite and the
 * in-process queue: 50 order-router tasks over HTTP, every one decided the way
 * the seeded data says, every routing effect recorded exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/pgTaskStore";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { getJson, startNodeProcess, stopAll, submitTask, tempDir, waitForTasks, type NodeProcess } from "../../testkit/cluster";

const TASKS = 50;

describe("embedded mode - clawfleet start", () => {
  const data = tempDir("clawfleet-embedded-");
  let node: NodeProcess;
  let base: string;

  beforeAll(async () => {
    node = await startNodeProcess({
      name: "embedded",
      env: { CLAWFLEET_DATA_DIR: data.dir, CLAWFLEET_NAMESPACE: `e2e-emb-${process.pid}`, CLAWFLEET_SIM_LATENCY_MS: "5" },
    });
    base = `http://127.0.0.1:${node.port}`;
  }, 90_000);

  afterAll(async () => {
    if (node) await stopAll([node]);
    data.remove();
  });

  it("prints how to submit a task and a banner naming the simulated model", () => {
    expect(node.output()).toContain("curl -s -X POST");
    expect(node.output()).toContain("SIMULATED model");
  });

  it("runs 50 submitted tasks to the decision the seeded data implies, each routing effect once", async () => {
    const orders = orderIds().slice(0, TASKS - 1);
    const inputs: Array<{ order: string; input: unknown }> = orders.map((o, i) => ({
      order: o,
      input: i % 2 === 0 ? { order_id: o } : `Please route order ${o} today.`,
    }));
    inputs.push({ order: "ORD-99999", input: { order_id: "ORD-99999" } });

    const submitted = await Promise.all(inputs.map(({ input }) => submitTask(base, { agent: "order-router", input })));
    for (const s of submitted) {
      expect(s.status).toBe(202);
      expect(s.location).toBe(`/v1/tasks/${s.id}`);
    }
    const ids = submitted.map((s) => s.id);
    const done = await waitForTasks(base, ids, 90_000);
    expect(done.size).toBe(TASKS);

    const routedIds: string[] = [];
    inputs.forEach(({ order }, i) => {
      const id = ids[i] as string;
      const t = done.get(id);
      expect(t?.status, `task for ${order}`).toBe("succeeded");
      const want = expectedRouting(order);
      const got = t?.result as { routed: boolean; warehouse_id: string | null; order_id: string };
      expect(got.order_id).toBe(order);
      expect(got.routed).toBe(want.routed);
      expect(got.warehouse_id).toBe(want.warehouse_id);
      expect(t?.usage.input_tokens).toBeGreaterThan(0);
      expect(t?.prompt_version).toMatch(/^[0-9a-f]{12}$/);
      if (want.routed) routedIds.push(id);
    });

    // Steps of a routed task: LLM and tool steps alternate as the model asked, numbered without gaps.
    const first = routedIds[0] as string;
    const { steps } = await getJson<{ steps: Array<{ step: number; kind: string; tool?: string; tier?: string }> }>(`${base}/v1/tasks/${first}/steps`);
    expect(steps.map((s) => s.step)).toEqual(steps.map((_, i) => i + 1));
    // Step 1 is the tiered router's classification; the agent's own loop starts at step 2.
    expect(steps[0]).toMatchObject({ kind: "llm", tier: "classify" });
    expect(steps[1]?.kind).toBe("llm");
    expect(steps[2]).toMatchObject({ kind: "tool", tool: "lookup_order" });
    expect(steps.filter((s) => s.tool === "route_order")).toHaveLength(1);
    expect(steps.at(-1)?.kind).toBe("llm");

    // Stop the node (graceful, exit 0), then read the routing table it left behind.
    await stopAll([node]);
    expect((await node.exited).code).toBe(0);
    const db = await openStore({ dataDir: data.dir });
    try {
      const { rows } = await db.pool.query<{ task_id: string; n: number }>(
        "SELECT task_id, count(*)::int AS n FROM order_routes GROUP BY task_id",
      );
      const perTask = new Map(rows.map((r) => [r.task_id, r.n]));
      expect(perTask.size).toBe(routedIds.length);
      for (const id of routedIds) expect(perTask.get(id), `effects of ${id}`).toBe(1);
    } finally {
      await db.close();
    }
  }, 180_000);
});
