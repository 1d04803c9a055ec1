/**
 * crash - lost wake-ups (invariant 1): a crash between intake's commit and its
 * publish, made certain with CLAWFLEET_FAULT_DROP_WAKEUPS=1 (every wake-up of a
 * submission is dropped after the commit). The tasks are committed, so the
 * reaper finds them `queued` with an old wake-up and publishes new ones: every
 * task runs, within about the reaper's settings of its submission.
 */
import { describe, expect, it } from "vitest";
import { orderIds } from "../../examples/order-router/lib/data";
import { outcomeProblems, submit, waitTerminal } from "../../testkit/crash";
import { useCrashDrill } from "../helpers/crashDrill";
import { hasService } from "../helpers/services";

// No more tasks than planner slots (2 × 4): a task's start then measures the reaper, not a wait for a free slot.
const TASKS = 8;
const QUEUED_AFTER_MS = 2000;
const REAPER_INTERVAL_MS = 500;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - every wake-up lost between commit and publish", () => {
  const drill = useCrashDrill({
    name: "crashpub",
    latencyMs: 100,
    env: {
      CLAWFLEET_PLANNER_SLOTS: "4",
      CLAWFLEET_REAPER_INTERVAL_MS: String(REAPER_INTERVAL_MS),
      CLAWFLEET_REAPER_QUEUED_AFTER_MS: String(QUEUED_AFTER_MS),
      CLAWFLEET_SHUTDOWN_GRACE_MS: "5000",
    },
    layout: { planners: 2, executors: 1, apiEnv: { CLAWFLEET_FAULT_DROP_WAKEUPS: "1" } },
  });

  it("publish - with every wake-up dropped after the commit, the reaper runs all tasks, each within about its settings", async () => {
    const { cluster, base, client } = drill;
    const orders = orderIds().slice(700, 700 + TASKS);
    const submitted = new Map<string, string>();
    for (const order of orders) submitted.set(await submit(base, { order_id: order }), order);
    const ids = [...submitted.keys()];

    const tasks = await waitTerminal(client, ids, 120_000);
    expect(await outcomeProblems(client, submitted, tasks)).toEqual([]);

    // Every submission's wake-up was dropped: the reaper, and nothing else, started each task.
    const dropped = cluster.logs().filter((l) => l.event === "wakeup.dropped_by_fault").map((l) => l.taskId);
    expect(new Set(dropped)).toEqual(new Set(ids));
    expect(cluster.logs().some((l) => l.event === "reaper.requeued")).toBe(true);
    const { rows } = await client.query<{ id: string; delay_ms: number }>(
      "SELECT id, (extract(epoch FROM started_at - created_at) * 1000)::float8 AS delay_ms FROM tasks WHERE id = ANY($1::uuid[])",
      [ids],
    );
    const delays = rows.map((r) => r.delay_ms).sort((a, b) => a - b);
    process.stdout.write(
      `crash.publish: ${TASKS} tasks, every wake-up dropped; submission to first claim: min ${Math.round(delays[0] ?? NaN)} ms, max ${Math.round(delays.at(-1) ?? NaN)} ms (reaper: queued after ${QUEUED_AFTER_MS} ms, every ${REAPER_INTERVAL_MS} ms)\n`,
    );
    // No task started before the reaper could have found it (its wake-up was never sent) ...
    expect(delays[0]).toBeGreaterThanOrEqual(QUEUED_AFTER_MS);
    // ... and each within about the reaper's settings: the age threshold, a sweep period, and slack for a loaded machine.
    expect(delays.at(-1)).toBeLessThan(QUEUED_AFTER_MS + 2 * REAPER_INTERVAL_MS + 3000);
  }, 240_000);
});
