/**
 * crash - a paused "zombie" planner (invariant 2). One task, two planners, the
 * model slow enough (800 ms a call) that the lease holder is caught with a model
 * call in flight: it is frozen with SIGSTOP past its lease TTL, the reaper hands
 * the task to the other planner, which resumes it from the checkpoints and
 * finishes it. Then the zombie is continued with SIGCONT: its late checkpoint is
 * refused by fencing, it logs that it abandoned the task, and it makes no further
 * model or tool call. The task's final state and later steps are the successor's,
 * and the order is routed exactly once.
 */
import { describe, expect, it } from "vitest";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { outcomeProblems, readCheckpoints, readTasks, reexecutedSteps, simRequests, sleep, submit, toolRuns, waitTerminal } from "../../testkit/crash";
import { useCrashDrill } from "../helpers/crashDrill";
import { hasService } from "../helpers/services";

const ready = hasService("postgres") && hasService("redis") && hasService("nats");
const LEASE_TTL_MS = 2000;

describe.skipIf(!ready)("crash - a zombie planner paused past its lease", () => {
  const drill = useCrashDrill({
    name: "crashzombie",
    latencyMs: 800,
    env: { CLAWFLEET_LEASE_TTL_MS: String(LEASE_TTL_MS), CLAWFLEET_REAPER_INTERVAL_MS: "500", CLAWFLEET_SHUTDOWN_GRACE_MS: "5000" },
    layout: { planners: 2, executors: 1 },
  });

  it("zombie - SIGSTOP mid-call past the lease, successor finishes, SIGCONT: late write fenced off, task abandoned, one routing effect", async () => {
    const { sim, cluster, base, client } = drill;
    const order = orderIds().find((o) => expectedRouting(o).routed) as string;
    const taskId = await submit(base, { order_id: order });

    // Catch the holder waiting on the model: a request of the task's second conversation turn (or later) has just arrived.
    const deadline = Date.now() + 60_000;
    let inFlight: { turn: number; at: number } | undefined;
    while (!inFlight) {
      if (Date.now() > deadline) throw new Error(`the task never reached its second model turn:\n${cluster.tails(20)}`);
      const reqs = (await simRequests(sim.url)).filter((r) => r.user_id === taskId && r.tools > 0 && r.turn >= 2);
      const last = reqs.at(-1);
      if (last && Date.now() - last.at < 400) inFlight = last;
      else await sleep(30);
    }
    const { rows } = await client.query<{ lease_owner: string; fence: string; steps: number }>("SELECT lease_owner, fence, steps FROM tasks WHERE id = $1", [taskId]);
    const holder = rows[0];
    const zombie = holder ? cluster.byNodeId(holder.lease_owner) : undefined;
    if (!holder || !zombie) throw new Error(`no live lease holder for the task: ${JSON.stringify(holder)}`);
    zombie.signal("SIGSTOP");
    const stoppedAt = Date.now();
    const zombieFence = Number(holder.fence);

    try {
      const done = await waitTerminal(client, [taskId], 90_000);
      expect(done.get(taskId)?.status, cluster.tails(20)).toBe("succeeded");
      expect(Date.now() - stoppedAt).toBeGreaterThan(LEASE_TTL_MS);
    } finally {
      // Continued even if the successor failed, so the process can be stopped.
      zombie.signal("SIGCONT");
    }
    const resumedAt = Date.now();
    const before = await readCheckpoints(client, [taskId]);
    const [finalBefore] = (await readTasks(client, [taskId])).values();

    // The zombie wakes up to its model call's answer, tries to checkpoint it, and is refused.
    const abandoned = async () => zombie.output().split("\n").find((l) => l.includes('"task.abandoned"') && l.includes(taskId));
    const until = Date.now() + 30_000;
    while (!(await abandoned()) && Date.now() < until) await sleep(100);
    const line = await abandoned();
    expect(line, zombie.output().slice(-3000)).toBeDefined();
    expect(JSON.parse(line as string).err).toMatch(/stale|lease/i);
    await sleep(1000);

    // Nothing the zombie did after waking changed the task.
    const after = await readCheckpoints(client, [taskId]);
    expect(after).toEqual(before);
    const [finalAfter] = (await readTasks(client, [taskId])).values();
    expect(finalAfter).toEqual(finalBefore);
    const { rows: fenceRows } = await client.query<{ fence: string; lease_owner: string | null }>("SELECT fence, lease_owner FROM tasks WHERE id = $1", [taskId]);
    const successorFence = Number(fenceRows[0]?.fence);
    expect(successorFence).toBeGreaterThan(zombieFence);
    // Steps from the one in flight at the stop onwards are the successor's (a higher fence); the zombie wrote none of them.
    const inFlightStep = holder.steps + 1;
    const later = after.filter((c) => c.step >= inFlightStep);
    expect(later.length).toBeGreaterThan(0);
    for (const c of later) expect(c.fence).toBeGreaterThan(zombieFence);
    expect(after.filter((c) => c.fence === zombieFence).every((c) => c.at < stoppedAt)).toBe(true);

    // Exactly one routing effect; the decision is the seeded one; no checkpointed step made again.
    expect(await outcomeProblems(client, new Map([[taskId, order]]), new Map([[taskId, finalAfter as NonNullable<typeof finalAfter>]]))).toEqual([]);
    const requests = (await simRequests(sim.url)).filter((r) => r.user_id === taskId);
    const runs = toolRuns(cluster).filter((r) => r.key.startsWith(taskId));
    expect(reexecutedSteps(after, requests, runs)).toEqual([]);
    // Once continued, the zombie made no model call and ran no tool for the task.
    expect(requests.filter((r) => r.at >= resumedAt)).toEqual([]);
    expect(runs.filter((r) => r.at >= resumedAt)).toEqual([]);
    // The successor resumed from the checkpoints rather than starting over.
    expect(cluster.logs().some((l) => l.event === "task.resumed" && l.taskId === taskId && l.node !== zombie.nodeId)).toBe(true);
    process.stdout.write(
      `crash.zombie: ${zombie.nodeId} stopped with model turn ${inFlight.turn} in flight (fence ${zombieFence}); successor fence ${successorFence} finished after ${resumedAt - stoppedAt} ms; zombie: ${JSON.parse(line as string).err}\n`,
    );
  }, 240_000);
});
