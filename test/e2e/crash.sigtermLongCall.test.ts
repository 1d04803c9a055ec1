/**
 * crash - SIGTERM to a planner whose task is inside a long model call (invariant 4).
 * The model takes 60 s to answer, longer than the whole grace period: the
 * planner must not wait for it. It stops taking work, gives the attempt its short
 * step drain, then aborts the call, releases the task without counting the
 * attempt and exits 0 within the default grace period. A new planner (behind a
 * rate-gateway on a quick model) then finishes the task once: one routing
 * effect, no checkpointed step made again.
 */
import { describe, expect, it } from "vitest";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { outcomeProblems, readCheckpoints, reexecutedSteps, simRequests, sleep, startSim, stopProc, submit, toolRuns, waitTerminal } from "../../testkit/crash";
import { useCrashDrill } from "../helpers/crashDrill";
import { hasService } from "../helpers/services";

/** CLAWFLEET_SHUTDOWN_GRACE_MS's default, which the drill leaves unset. */
const DEFAULT_GRACE_MS = 25_000;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - SIGTERM to a planner inside a long model call", () => {
  const drill = useCrashDrill({ name: "crashlong", latencyMs: 60_000, env: { CLAWFLEET_AUTH: "off" }, layout: { planners: 1, executors: 1 } });

  it("sigterm - the holder aborts its 60 s model call, exits 0 within the grace period and hands the task back uncounted; a new planner finishes it once", async () => {
    const { sim, cluster, base, client } = drill;
    const order = orderIds().find((o) => expectedRouting(o).routed && o > "ORD-1500") as string;
    const taskId = await submit(base, { order_id: order });

    // The task's first model call has reached the model, which will not answer for a minute.
    const deadline = Date.now() + 60_000;
    while (!(await simRequests(sim.url)).some((r) => r.user_id === taskId)) {
      if (Date.now() > deadline) throw new Error(`the task never called the model:\n${cluster.tails(20)}`);
      await sleep(100);
    }
    const holder = cluster.get("planner-1");
    const termAt = Date.now();
    holder.signal("SIGTERM");
    const exit = await holder.exited;
    const exitMs = Date.now() - termAt;
    expect(exit, holder.output().slice(-3000)).toEqual({ code: 0, signal: null });
    expect(exitMs).toBeLessThan(DEFAULT_GRACE_MS);

    // Handed back, and the attempt not counted: a rolling restart is not the task's fault.
    const { rows } = await client.query<{ status: string; attempts: number; lease_owner: string | null; steps: number }>(
      "SELECT status, attempts, lease_owner, steps FROM tasks WHERE id = $1",
      [taskId],
    );
    expect(rows[0]).toEqual({ status: "queued", attempts: 0, lease_owner: null, steps: 0 });
    const holderLogs = cluster.logs().filter((l) => l.node === holder.nodeId);
    expect(holderLogs.some((l) => l.event === "task.calls_aborted" && l.taskId === taskId)).toBe(true);

    // A rate-gateway on a quick model replaces the slow one, and a new planner takes the released task.
    const quick = await startSim({ latencyMs: 200 });
    try {
      await cluster.start("rate-gateway-2", "rate-gateway", { ANTHROPIC_BASE_URL: quick.url });
      await stopProc(cluster.get("rate-gateway"));
      await cluster.start("planner-2", "planner");

      const tasks = await waitTerminal(client, [taskId], 120_000);
      expect(await outcomeProblems(client, new Map([[taskId, order]]), tasks), cluster.tails(20)).toEqual([]);
      expect(tasks.get(taskId)?.attempts).toBe(1);
      const checkpoints = await readCheckpoints(client, [taskId]);
      // Every checkpoint is the new planner's (fence 2): the holder's call was abandoned, not answered.
      expect(new Set(checkpoints.map((c) => c.fence))).toEqual(new Set([2]));
      const requests = [...(await simRequests(sim.url)), ...(await simRequests(quick.url))].filter((r) => r.user_id === taskId);
      const runs = toolRuns(cluster).filter((r) => r.key.startsWith(taskId));
      expect(reexecutedSteps(checkpoints, requests, runs)).toEqual([]);
      // Each tool step executed once.
      expect(new Set(runs.map((r) => r.key)).size).toBe(runs.length);
      process.stdout.write(`crash.sigtermLongCall: ${holder.nodeId} exited 0 in ${exitMs} ms after SIGTERM inside a 60 s model call\n`);
    } finally {
      await stopProc(quick);
    }
  }, 300_000);
});
