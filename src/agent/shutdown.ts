/**
 * How a planner spends its one grace period on SIGTERM (invariant 4,
 * docs/invariants.md): stop taking work and let each running attempt reach its
 * next step boundary for a short while; then abort the calls still in flight
 * (a 40 s model call must not outlast the pod), so every attempt ends
 * interrupted and is handed back uncounted; and keep a reserve for stopping the
 * broker and closing connections, all inside `CLAWFLEET_SHUTDOWN_GRACE_MS`.
 */
import type { TaskWorker } from "./taskWorker";

export interface ShutdownPlan {
  /** How long running attempts get to reach a step boundary before their calls are aborted. */
  stepDrainMs: number;
  /** By when (from the signal) every attempt must be handed back; the rest of the grace period is the reserve. */
  releaseByMs: number;
}

export function shutdownPlan(graceMs: number): ShutdownPlan {
  const fifth = Math.floor(graceMs / 5);
  return { stepDrainMs: Math.min(5_000, fifth), releaseByMs: graceMs - Math.min(3_000, fifth) };
}

/** Runs the plan on `worker`, from `startedAt` (epoch ms); true when every attempt was handed back in time. */
export async function drainWorker(
  worker: Pick<TaskWorker, "stop" | "abortCalls" | "drain">,
  plan: ShutdownPlan,
  reason: unknown,
  startedAt = Date.now(),
): Promise<boolean> {
  worker.stop(reason);
  if (await worker.drain(plan.stepDrainMs)) return true;
  worker.abortCalls(reason);
  return worker.drain(Math.max(0, startedAt + plan.releaseByMs - Date.now()));
}
