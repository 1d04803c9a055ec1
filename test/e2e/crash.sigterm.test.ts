/**
 * crash - graceful shutdown (invariant 4). A planner gets SIGTERM while it runs
 * a task: it stops taking work, lets the step in flight finish and checkpoint,
 * releases the task (the attempt does not count) and exits 0 within the grace
 * period. The other planner resumes the task from its checkpoints, redoing no
 * checkpointed step, and finishes it with the right decision.
 */
import { describe, expect, it } from "vitest";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { outcomeProblems, readCheckpoints, reexecutedSteps, simRequests, sleep, submit, toolRuns, waitTerminal, type Proc } from "../../testkit/crash";
import { useCrashDrill } from "../helpers/crashDrill";
import { hasService } from "../helpers/services";

const GRACE_MS = 15_000;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - SIGTERM to a planner mid-task", () => {
  const drill = useCrashDrill({
    name: "crashterm",
    latencyMs: 400,
    env: { CLAWFLEET_SHUTDOWN_GRACE_MS: String(GRACE_MS), CLAWFLEET_REAPER_INTERVAL_MS: "500" },
    layout: { planners: 2, executors: 1 },
  });

  it("sigterm - the holder exits 0 within the grace period, releases the task uncounted, another planner resumes it from the checkpoint", async () => {
    const { sim, cluster, base, client } = drill;
    const order = orderIds().find((o) => expectedRouting(o).routed && o > "ORD-1800") as string;
    const taskId = await submit(base, { order_id: order });

    // Mid-task: a few steps checkpointed, more to come.
    let holder: Proc | undefined;
    let stepsAtTerm = 0;
    const deadline = Date.now() + 60_000;
    while (!holder) {
      if (Date.now() > deadline) throw new Error(`the task never got going:\n${cluster.tails(20)}`);
      const { rows } = await client.query<{ lease_owner: string | null; steps: number; status: string }>("SELECT lease_owner, steps, status FROM tasks WHERE id = $1", [taskId]);
      const r = rows[0];
      if (r?.status === "running" && r.steps >= 3 && r.lease_owner) {
        holder = cluster.byNodeId(r.lease_owner);
        stepsAtTerm = r.steps;
      } else await sleep(50);
    }

    const termAt = Date.now();
    holder.signal("SIGTERM");
    const exit = await holder.exited;
    const exitMs = Date.now() - termAt;
    expect(exit, holder.output().slice(-3000)).toEqual({ code: 0, signal: null });
    expect(exitMs).toBeLessThan(GRACE_MS);

    const tasks = await waitTerminal(client, [taskId], 90_000);
    const task = tasks.get(taskId);
    expect(await outcomeProblems(client, new Map([[taskId, order]]), tasks)).toEqual([]);
    // Claimed twice (by the holder, then by its successor), yet one attempt: the release gave the first one back.
    expect(task?.attempts).toBe(1);
    const checkpoints = await readCheckpoints(client, [taskId]);
    expect(new Set(checkpoints.map((c) => c.fence))).toEqual(new Set([1, 2]));
    // The holder checkpointed the step it was in when told to stop, then nothing more.
    const byHolder = checkpoints.filter((c) => c.fence === 1);
    expect(Math.max(...byHolder.map((c) => c.step))).toBeGreaterThanOrEqual(stepsAtTerm);
    expect(byHolder.every((c) => c.at < termAt + exitMs)).toBe(true);
    const resumed = cluster.logs().find((l) => l.event === "task.resumed" && l.taskId === taskId);
    expect(resumed?.node).not.toBe(holder.nodeId);
    expect(Number(resumed?.step)).toBeGreaterThan(Math.max(...byHolder.map((c) => c.step)));
    const requests = (await simRequests(sim.url)).filter((r) => r.user_id === taskId);
    expect(reexecutedSteps(checkpoints, requests, toolRuns(cluster).filter((r) => r.key.startsWith(taskId)))).toEqual([]);
    process.stdout.write(`crash.sigterm: ${holder.nodeId} exited 0 in ${exitMs} ms after SIGTERM at step ${stepsAtTerm}; ${resumed?.node} resumed at step ${String(resumed?.step)}\n`);
  }, 240_000);
});
