/**
 * tenant quotas - one embedded `clawfleet start` process each: a tenant's running
 * cap holds while all of its queued tasks still finish, woken by their tenant's
 * freed slots (the reaper is kept out of it); and a submission over the tenant's
 * submit rate is answered 429 with Retry-After, with nothing stored.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/pgTaskStore";
import { getJson, startNodeProcess, stopAll, submitTask, tempDir, waitForTasks, type NodeProcess } from "../../testkit/cluster";

/** One embedded node process for a describe block, on a data dir of its own; `base()` is its URL. */
function useNode(name: string, env: Record<string, string>): { base: () => string; dataDir: () => string; stop: () => Promise<number | null> } {
  const data = tempDir(`clawfleet-${name}-`);
  let node: NodeProcess | undefined;
  beforeAll(async () => {
    node = await startNodeProcess({ name, env: { CLAWFLEET_DATA_DIR: data.dir, CLAWFLEET_NAMESPACE: `e2e-${name}-${process.pid}`, ...env } });
  }, 90_000);
  afterAll(async () => {
    if (node) await stopAll([node]);
    data.remove();
  });
  return {
    base: () => `http://127.0.0.1:${node?.port}`,
    dataDir: () => data.dir,
    // A graceful stop; answers the exit code.
    stop: async () => {
      if (!node) return null;
      await stopAll([node]);
      return (await node.exited).code;
    },
  };
}

interface TaskTimes {
  status: string;
  attempts: number;
  started_at: string;
  finished_at: string;
}

describe("tenant quotas - running cap", () => {
  const node = useNode("capped", {
    CLAWFLEET_SIM_LATENCY_MS: "20",
    CLAWFLEET_PLANNER_SLOTS: "4",
    CLAWFLEET_TENANT_MAX_RUNNING: "1",
    // No sweep within the test: only the settle path can wake the capped tasks.
    CLAWFLEET_REAPER_INTERVAL_MS: "600000",
  });

  it("runs one task of the tenant at a time, and every one of them finishes without the reaper", async () => {
    const base = node.base();
    const submitted = await Promise.all(Array.from({ length: 6 }, (_, i) => submitTask(base, { agent: "order-router", input: { order_id: `ORD-100${i}` } })));
    for (const s of submitted) expect(s.status).toBe(202);
    const ids = submitted.map((s) => s.id);
    const done = await waitForTasks(base, ids, 60_000);
    expect(done.size).toBe(ids.length);

    const times = await Promise.all(ids.map((id) => getJson<TaskTimes>(`${base}/v1/tasks/${id}`)));
    for (const t of times) expect(t).toMatchObject({ status: "succeeded", attempts: 1 });
    // Cap 1: each task was claimed only once the one before it had finished.
    const spans = times.map((t) => [Date.parse(t.started_at), Date.parse(t.finished_at)] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]?.[0]).toBeGreaterThanOrEqual(spans[i - 1]?.[1] ?? Infinity);
  }, 90_000);
});

describe("tenant quotas - submit rate", () => {
  const node = useNode("rated", { CLAWFLEET_TENANT_SUBMIT_RATE: "0.2", CLAWFLEET_TENANT_SUBMIT_BURST: "2" });

  it("answers 429 rate_limited with Retry-After over the rate, and stores nothing for it", async () => {
    const base = node.base();
    const body = { agent: "order-router", input: { order_id: "ORD-1001" } };
    expect((await submitTask(base, body)).status).toBe(202);
    expect((await submitTask(base, body)).status).toBe(202);

    const refused = await fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    expect(refused.status).toBe(429);
    // 0.2 per second: the next token is up to 5 s away, in whole seconds.
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(4);
    expect(retryAfter).toBeLessThanOrEqual(5);
    const err = (await refused.json()) as { error: { type: string; message: string } };
    expect(err.error.type).toBe("rate_limited");
    expect(err.error.message).toContain("submit rate");

    expect(await node.stop()).toBe(0);
    const db = await openStore({ dataDir: node.dataDir() });
    try {
      const { rows } = await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks");
      expect(rows[0]?.n).toBe(2);
    } finally {
      await db.close();
    }
  }, 90_000);
});
