/**
 * crash - a task that keeps failing on infrastructure (invariants 1, 3). With no
 * executor running (its pods down), every attempt ends on a retryable
 * "service not available": the task is released, re-published by the reaper and
 * tried again until CLAWFLEET_MAX_ATTEMPTS, then failed and listed at
 * GET /v1/dead-letters. Once an executor is back, POST /v1/tasks/{id}/redrive
 * puts it back in the queue: it resumes from its checkpoints (its first model
 * step is never paid for twice) and succeeds.
 */
import { describe, expect, it } from "vitest";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { outcomeProblems, readCheckpoints, reexecutedSteps, simRequests, sleep, submit, toolRuns, waitTerminal } from "../../testkit/crash";
import { useCrashDrill } from "../helpers/crashDrill";
import { EXECUTOR_ROLES } from "../../testkit/examples";
import { hasService } from "../helpers/services";

const MAX_ATTEMPTS = 3;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - poison task: dead-lettered after its attempts, redriven", () => {
  const drill = useCrashDrill({
    name: "crashpoison",
    latencyMs: 50,
    env: {
      CLAWFLEET_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
      CLAWFLEET_REAPER_INTERVAL_MS: "300",
      CLAWFLEET_REAPER_QUEUED_AFTER_MS: "1000",
      CLAWFLEET_SHUTDOWN_GRACE_MS: "5000",
    },
    layout: { planners: 1, executors: 0 },
  });

  it("poison - fails after CLAWFLEET_MAX_ATTEMPTS retryable failures, is dead-lettered, and a redrive resumes it to success", async () => {
    const { sim, cluster, base, client } = drill;
    const order = orderIds().find((o) => expectedRouting(o).routed && o > "ORD-1900") as string;
    const taskId = await submit(base, { order_id: order });

    const failed = (await waitTerminal(client, [taskId], 90_000)).get(taskId);
    expect(failed?.status, cluster.tails(20)).toBe("failed");
    expect(failed?.error).toMatchObject({ type: "attempts_exhausted" });
    const retries = cluster.logs().filter((l) => l.event === "task.retry" && l.taskId === taskId);
    expect(retries).toHaveLength(MAX_ATTEMPTS);
    for (const r of retries) expect(String(r.err)).toMatch(/executor/);

    const letters = (await (await fetch(`${base}/v1/dead-letters`)).json()) as Array<{ task_id: string; error: { type: string }; attempts: number }>;
    const letter = letters.find((l) => l.task_id === taskId);
    expect(letter?.error.type).toBe("attempts_exhausted");
    expect(letter?.attempts).toBeGreaterThan(MAX_ATTEMPTS);

    // The executors come back; an operator redrives the task.
    await cluster.start("executor-1", EXECUTOR_ROLES);
    await sleep(2000); // the planner learns of the new node from its announcement
    const redrive = await fetch(`${base}/v1/tasks/${taskId}/redrive`, { method: "POST" });
    expect(redrive.status).toBe(200);
    expect(await redrive.json()).toEqual({ taskId, redriven: true });

    const tasks = await waitTerminal(client, [taskId], 90_000);
    expect(await outcomeProblems(client, new Map([[taskId, order]]), tasks)).toEqual([]);
    const after = (await (await fetch(`${base}/v1/dead-letters`)).json()) as Array<{ task_id: string }>;
    expect(after.some((l) => l.task_id === taskId)).toBe(false);

    // Resumed, not restarted: the step checkpointed before the failures (the classification) was asked of the model once.
    const checkpoints = await readCheckpoints(client, [taskId]);
    const requests = (await simRequests(sim.url)).filter((r) => r.user_id === taskId);
    expect(reexecutedSteps(checkpoints, requests, toolRuns(cluster))).toEqual([]);
    const first = checkpoints.find((c) => c.step === 1);
    expect(first?.kind).toBe("llm");
    expect(requests.filter((r) => r.at <= (first?.at ?? 0))).toHaveLength(1);
    process.stdout.write(
      `crash.poison: ${retries.length} retryable failures, dead-lettered after attempt ${letter?.attempts}; redriven, succeeded with ${checkpoints.length} checkpoints and ${requests.length} model requests\n`,
    );
  }, 240_000);
});
