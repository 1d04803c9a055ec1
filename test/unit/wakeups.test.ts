/**
 * wakeups - the one publisher of `tasks.ready` (a failed publish is logged, never thrown; fault
 * injection drops only post-commit publishes), the planners' consumer policy, the reaper's
 * leader election, and the rate-gateway's provider health window.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { WakeUp } from "../../src/contracts";
import { MemoryLeaseManager } from "../../src/lease/memory";
import { ProviderHealth } from "../../src/llm/provider";
import { REAPER_LEASE, ReaperLoop } from "../../src/queue/reaperLoop";
import { plannerConsumer, TASKS_DEAD_CHANNEL, TASKS_READY_CHANNEL, TASKS_READY_MAXLEN, WAKEUP_MAX_RETRIES, WakeUps } from "../../src/queue/wakeups";

function recordingLogger() {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = [];
  const log = (level: string) => (obj: Record<string, unknown>, msg: string) => lines.push({ level, obj, msg });
  return { lines, info: log("info"), warn: log("warn") };
}

describe("wakeups - publishing", () => {
  it("sends a wake-up on tasks.ready with the stream's length cap", async () => {
    const sent: unknown[][] = [];
    const wakeUps = new WakeUps(async (...args) => void sent.push(args), recordingLogger());
    await wakeUps.publish({ taskId: "t1", reason: "reaped" });
    expect(sent).toEqual([[TASKS_READY_CHANNEL, { taskId: "t1", reason: "reaped" }, { xaddMaxLen: TASKS_READY_MAXLEN }]]);
  });

  it("logs a failed publish and resolves: the task is committed and the reaper re-publishes it", async () => {
    const logger = recordingLogger();
    const wakeUps = new WakeUps(() => Promise.reject(new Error("queue down")), logger);
    await expect(wakeUps.publish({ taskId: "t1", reason: "released" })).resolves.toBeUndefined();
    expect(logger.lines).toEqual([expect.objectContaining({ level: "warn", obj: expect.objectContaining({ event: "wakeup.publish_failed", taskId: "t1", err: "queue down" }) })]);
  });

  it("drops post-commit publishes under fault injection, never the others", async () => {
    const sent: WakeUp[] = [];
    const logger = recordingLogger();
    const wakeUps = new WakeUps(async (_channel, payload) => void sent.push(payload as WakeUp), logger, { dropRate: 1 });
    await wakeUps.publishCommitted({ taskId: "dropped", reason: "submitted" });
    await wakeUps.publish({ taskId: "kept", reason: "reaped" });
    expect(sent.map((w) => w.taskId)).toEqual(["kept"]);
    expect(logger.lines.map((l) => l.obj.event)).toEqual(["wakeup.dropped_by_fault"]);
  });

  it("gives the planners one group, a slot per wake-up in flight, and the adapters' retry and dead-letter policy", () => {
    expect(plannerConsumer({ planner: { slots: 7 } })).toEqual({
      group: "planners",
      maxInFlight: 7,
      maxRetries: WAKEUP_MAX_RETRIES,
      deadLettering: { enabled: true, queueName: TASKS_DEAD_CHANNEL },
    });
  });
});

describe("wakeups - the reaper loop", () => {
  it("sweeps only on the process holding the reaper lease", async () => {
    const leases = new MemoryLeaseManager();
    const sweeps: Record<string, number> = { a: 0, b: 0 };
    const loop = (owner: "a" | "b") =>
      new ReaperLoop(
        {
          store: () => ({
            listRunning: async () => {
              sweeps[owner] = (sweeps[owner] ?? 0) + 1;
              return [];
            },
            listStaleQueued: async () => [],
            touchWakeup: async () => undefined,
            purgeIdempotencyKeys: async () => 0,
          }),
          leases,
          wakeUps: { publish: async () => undefined },
          queueDepth: async () => ({ waiting: 0 }),
          logger: recordingLogger(),
        },
        { owner, intervalMs: 10, queuedAfterMs: 1000 },
      );
    const [a, b] = [loop("a"), loop("b")];
    a.start();
    while (sweeps.a === 0) await sleep(5);
    b.start();
    await sleep(100);
    a.stop();
    b.stop();
    expect(sweeps.a).toBeGreaterThan(0);
    expect(sweeps.b).toBe(0);
    expect(await leases.held([REAPER_LEASE])).toEqual([true]);
  });
});

describe("wakeups - provider health", () => {
  it("is ready while the provider's last answer is fresh and names the last error once it is stale", async () => {
    let now = 1_000_000;
    let failing = false;
    const logger = recordingLogger();
    const health = new ProviderHealth(() => (failing ? Promise.reject(new Error("connection refused")) : Promise.resolve()), logger, {
      intervalMs: 5,
      freshMs: 60_000,
      now: () => now,
    });
    await health.start();
    expect(health.check()).toEqual({ ok: true });
    failing = true;
    now += 60_000;
    await sleep(50);
    health.stop();
    expect(health.check()).toEqual({ ok: false, reason: "provider not answering: connection refused" });
    expect(logger.lines[0]?.obj.event).toBe("provider.ping_failed");
    health.answered();
    expect(health.check()).toEqual({ ok: true });
  });
});
