/**
 * metrics - the per-scrape task count is a database query; scrapes within its
 * cache TTL, concurrent or not, share one query, and a failed one is not kept.
 */
import { describe, expect, it } from "vitest";
import { Metrics } from "../../src/telemetry/metrics";

function countingSource(answer: () => Promise<Record<string, number>>) {
  const calls = { countByStatus: 0 };
  return {
    calls,
    source: {
      countByStatus: () => {
        calls.countByStatus += 1;
        return answer();
      },
      queueDepth: async () => ({ waiting: 0, inFlight: 0 }),
    },
  };
}

describe("metrics - cluster task counts are cached between scrapes", () => {
  it("N scrapes within the TTL, concurrent and sequential, issue one countByStatus query", async () => {
    let clock = 1_000_000;
    const metrics = new Metrics({ node: "n1" }, { enabled: true });
    const { calls, source } = countingSource(async () => ({ queued: 3, failed: 1 }));
    metrics.attachClusterSource(source, { ttlMs: 5_000, now: () => clock });
    const scrapes = await Promise.all(Array.from({ length: 10 }, () => metrics.registry.metrics()));
    for (let i = 0; i < 10; i++) {
      clock += 400;
      scrapes.push(await metrics.registry.metrics());
    }
    expect(calls.countByStatus).toBe(1);
    for (const text of scrapes) expect(text).toMatch(/clawfleet_tasks\{[^}]*status="queued"[^}]*\} 3\n/);
    clock += 5_000;
    await metrics.registry.metrics();
    expect(calls.countByStatus).toBe(2);
  });

  it("asks again after a failed query instead of serving the failure", async () => {
    const metrics = new Metrics({ node: "n1" }, { enabled: true });
    let fail = true;
    const { calls, source } = countingSource(async () => {
      if (fail) throw new Error("database down");
      return { queued: 7 };
    });
    metrics.attachClusterSource(source, { ttlMs: 60_000 });
    await metrics.registry.metrics();
    fail = false;
    const text = await metrics.registry.metrics();
    expect(calls.countByStatus).toBe(2);
    expect(text).toMatch(/clawfleet_tasks\{[^}]*status="queued"[^}]*\} 7\n/);
  });

  it("exports no tenant label on any series", async () => {
    const metrics = new Metrics({ node: "n1" }, { enabled: true });
    metrics.attachClusterSource(countingSource(async () => ({ queued: 1 })).source);
    const text = await metrics.registry.metrics();
    expect(text).not.toMatch(/tenant/i);
  });
});
