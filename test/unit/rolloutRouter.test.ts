/**
 * rollout router - which version a new task runs: the canary's share of task
 * ids is its weight (deterministic per id, even over the buckets, monotone as
 * the weight rises), the stable version otherwise; and the intake's cache of
 * rollout rows, which never takes a row back to an older revision.
 */
import { createHash, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Rollout } from "../../src/contracts";
import { RolloutCache } from "../../src/rollout/cache";
import { BUCKETS, bucketOf, routeVersion } from "../../src/rollout/router";

/** Task ids as `randomUUID` writes them, but reproducible: the n-th id is the same on every run. */
function taskId(n: number): string {
  const h = createHash("sha256").update(`task-${n}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const ids = (count: number) => Array.from({ length: count }, (_, i) => taskId(i));

function rollout(over: Partial<Rollout> = {}): Rollout {
  return {
    agent: "order-router",
    stable_version: "stable000001",
    file_version: "stable000001",
    canary_version: "canary000001",
    canary_weight: 5,
    steps: [5, 25, 50, 100],
    step_index: 0,
    min_tasks_per_step: 100,
    canary_state: "running",
    canary_started_at: "2025-01-01T00:00:00.000Z",
    step_started_at: "2025-01-01T00:00:00.000Z",
    decided_at: null,
    evidence: null,
    revision: 1,
    updated_at: "2025-01-01T00:00:00.000Z",
    ...over,
  };
}

const canaryShare = (r: Rollout, taskIds: readonly string[]) => taskIds.filter((id) => routeVersion(r, "files", id).canary).length / taskIds.length;

describe("rollout router - splitting new tasks", () => {
  it("router - a task id always lands in the same bucket, 0..99, whatever its case", () => {
    for (const id of ids(1000)) {
      const b = bucketOf(id);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(BUCKETS);
      expect(bucketOf(id)).toBe(b);
      expect(bucketOf(id.toUpperCase())).toBe(b);
    }
  });

  it("router - at 5% the canary gets 5% of 10,000 tasks, and each version's tasks are the same on every intake", () => {
    const r = rollout({ canary_weight: 5 });
    const sample = ids(10_000);
    const routed = sample.map((id) => routeVersion(r, "files", id));
    const canary = routed.filter((x) => x.canary);
    const share = canary.length / sample.length;
    console.log(`rollout router: canary share at 5% over 10,000 reproducible task ids: ${(share * 100).toFixed(2)}% (${canary.length} tasks)`);
    const random = Array.from({ length: 10_000 }, () => randomUUID());
    console.log(`rollout router: canary share at 5% over 10,000 random task ids: ${(canaryShare(r, random) * 100).toFixed(2)}%`);
    // Binomial: 500 expected, sd 21.8; ±100 is over 4.5 sd.
    expect(canary.length).toBeGreaterThan(400);
    expect(canary.length).toBeLessThan(600);
    for (const x of canary) expect(x.version).toBe("canary000001");
    for (const x of routed.filter((y) => !y.canary)) expect(x.version).toBe("stable000001");
    // Deterministic: the same ids split the same way again.
    expect(sample.map((id) => routeVersion(r, "files", id).canary)).toEqual(routed.map((x) => x.canary));
  });

  it("router - the buckets fill evenly, so each step's share is its weight", () => {
    const sample = ids(50_000);
    const counts = new Array<number>(BUCKETS).fill(0);
    for (const id of sample) {
      const b = bucketOf(id);
      counts[b] = (counts[b] ?? 0) + 1;
    }
    // 500 expected per bucket, sd 22.3.
    for (const n of counts) expect(Math.abs(n - 500)).toBeLessThan(112);
    const share = (weight: number) => counts.slice(0, weight).reduce((a, b) => a + b, 0) / sample.length;
    for (const weight of [5, 25, 50]) expect(Math.abs(share(weight) - weight / 100)).toBeLessThan(0.01);
    const few = sample.slice(0, 5000);
    expect(Math.abs(canaryShare(rollout({ canary_weight: 25 }), few) - 0.25)).toBeLessThan(0.025);
    expect(canaryShare(rollout({ canary_weight: 100 }), few)).toBe(1);
  });

  it("router - raising the weight keeps every task that ran the canary in its share", () => {
    const sample = ids(5_000);
    const at = (weight: number) => new Set(sample.filter((id) => routeVersion(rollout({ canary_weight: weight }), "files", id).canary));
    const [five, quarter, half] = [at(5), at(25), at(50)];
    expect(five.size).toBeGreaterThan(150);
    expect(half.size).toBeGreaterThan(2000);
    for (const id of five) expect(quarter.has(id)).toBe(true);
    for (const id of quarter) expect(half.has(id)).toBe(true);
  });

  it.each([
    ["aborted", rollout({ canary_state: "aborted", canary_weight: 0 })],
    ["rolled back", rollout({ canary_state: "rolled_back", canary_weight: 0 })],
    ["at weight 0", rollout({ canary_weight: 0 })],
    // The row's weight is 0 whenever the canary is not running; were it not, the state still decides.
    ["not running, whatever its weight", rollout({ canary_state: "aborted", canary_weight: 50 })],
  ])("router - a canary %s gets no task: every task runs the stable version", (_what, r) => {
    for (const id of ids(2000)) expect(routeVersion(r, "files", id)).toEqual({ version: "stable000001", canary: false });
  });

  it("router - a promoted canary is the stable version; without a rollout row the agent files' version runs", () => {
    const promoted = rollout({ stable_version: "canary000001", canary_state: "promoted", canary_weight: 0 });
    for (const id of ids(500)) expect(routeVersion(promoted, "files", id).version).toBe("canary000001");
    for (const id of ids(500)) expect(routeVersion(undefined, "files", id)).toEqual({ version: "files", canary: false });
  });
});

describe("rollout cache - what intake routes by", () => {
  const quiet = { info: () => undefined, warn: () => undefined };

  it("cache - a reload never takes a row back to an older revision than one this process wrote", async () => {
    let stored = [rollout({ revision: 1, canary_weight: 5 })];
    const cache = new RolloutCache(async () => stored, quiet);
    await cache.refresh();
    expect(cache.get("order-router")?.canary_weight).toBe(5);
    cache.put(rollout({ revision: 3, canary_weight: 25 }));
    await cache.refresh();
    expect(cache.get("order-router")?.revision).toBe(3);
    stored = [rollout({ revision: 4, canary_state: "aborted", canary_weight: 0 })];
    await cache.refresh();
    expect(cache.get("order-router")).toMatchObject({ revision: 4, canary_weight: 0 });
  });

  it("cache - a refresh asked for during a load reads again after it (that load may predate the change)", async () => {
    const releases: Array<() => void> = [];
    let loads = 0;
    let weight = 5;
    const cache = new RolloutCache(async () => {
      loads += 1;
      const seen = weight;
      await new Promise<void>((r) => releases.push(r));
      return [rollout({ revision: seen, canary_weight: seen })];
    }, quiet);
    const first = cache.refresh();
    await expect.poll(() => releases.length).toBe(1);
    // The change lands while the first load is out; its event asks for a refresh, twice.
    weight = 25;
    const second = cache.refresh();
    const third = cache.refresh();
    releases.shift()?.();
    await first;
    await expect.poll(() => releases.length).toBe(1);
    releases.shift()?.();
    await Promise.all([second, third]);
    expect(loads).toBe(2);
    expect(cache.get("order-router")?.canary_weight).toBe(25);
  });

  it("cache - a failed load keeps the rows last read and never rejects", async () => {
    let fail = false;
    const warned: string[] = [];
    const cache = new RolloutCache(
      async () => {
        if (fail) throw new Error("checkpoint down");
        return [rollout()];
      },
      { info: () => undefined, warn: (o) => warned.push(String(o.event)) },
    );
    await cache.refresh();
    fail = true;
    await cache.refresh();
    await cache.refresh();
    expect(cache.get("order-router")?.canary_version).toBe("canary000001");
    expect(warned).toEqual(["rollouts.refresh_failed"]);
  });
});
