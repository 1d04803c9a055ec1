/**
 * One planner slot's handling of a wake-up: take the task's lease, claim a new
 * fencing token, run the loop while the lease is kept alive, and settle the
 * attempt. A wake-up is only a hint: a duplicate, a late one or one for a task
 * another planner holds is dropped harmlessly.
 */
import { randomUUID } from "node:crypto";
import type { AgentCatalog } from "./definition";
import { LeaseKeeper } from "./leaseKeeper";
import { runLoop, type LoopDeps } from "./runLoop";
import { Settlement, wakeUpOutcomeOf, type AttemptInfo, type WakeUpOutcome, type WorkerHooks } from "./settle";
import { TERMINAL_STATUSES } from "../contracts";
import type { LeaseManager } from "../lease/types";
import type { TaskStore } from "../store/types";
import type { Metrics } from "../telemetry/metrics";

export type { WakeUpOutcome, WorkerHooks } from "./settle";

export interface WorkerOptions {
  /** The node id: recorded as the task's `lease_owner`; the Redis lease owner is this plus a per-attempt token. */
  owner: string;
  leaseTtlMs: number;
  leaseRenewMs: number;
  maxAttempts: number;
  defaultMaxSteps: number;
  /** Monotonic clock (ms) the lease deadline is kept on; tests pass their fake one. @default performance.now */
  now?: () => number;
}

export type WorkerMetrics = Pick<Metrics, "taskFinished" | "attemptSettled" | "taskRetried" | "leaseLost" | "taskResumed" | "duplicateToolCall" | "rateLimitWait">;

export class TaskWorker {
  private readonly running = new Map<string, AbortController>();
  private stopping = false;

  constructor(
    private readonly deps: LoopDeps & { store: TaskStore; leases: LeaseManager; agents: AgentCatalog; metrics?: WorkerMetrics },
    private readonly opts: WorkerOptions,
    private readonly hooks: WorkerHooks = {},
  ) {}

  get activeTasks(): number {
    return this.running.size;
  }

  /** `traceparent`: the wake-up's trace context, used when the task row holds none. */
  async handle(taskId: string, traceparent?: string): Promise<WakeUpOutcome> {
    if (this.stopping) return "ignored_stopping";
    const { store, logger, metrics } = this.deps;
    const seen = await store.getTask(taskId);
    if (!seen) return "ignored_unknown";
    if (TERMINAL_STATUSES.includes(seen.status)) return "ignored_terminal";
    const info: AttemptInfo = {
      labels: { agent: seen.agent, prompt_version: seen.prompt_version },
      createdAt: seen.created_at,
      progress: { steps: seen.steps, toolCalls: 0 },
    };
    const controller = new AbortController();
    const lease = new LeaseKeeper(
      { leases: this.deps.leases, logger, metrics, onLeaseLost: (id, labels) => this.hooks.onLeaseLost?.(id, labels) },
      {
        taskId,
        // Per attempt, not per node: two slots of one planner must never renew or release each other's lease.
        owner: `${this.opts.owner}:${randomUUID()}`,
        ttlMs: this.opts.leaseTtlMs,
        renewMs: this.opts.leaseRenewMs,
        now: this.opts.now ?? (() => performance.now()),
        labels: info.labels,
      },
      controller,
    );
    if (!(await lease.acquire())) return "ignored_leased";
    if (this.stopping) {
      // stop() came while we read the task or took the lease; its abort could not reach us, so start nothing.
      await lease.release();
      return "ignored_stopping";
    }

    this.running.set(taskId, controller);
    lease.keep();
    const settlement = new Settlement({ store, logger, metrics, hooks: this.hooks }, taskId, info);
    try {
      const claim = await store.claimTask(taskId, this.opts.owner);
      if (!claim) return "ignored_terminal";
      settlement.claimed(claim.fence);
      const { task, fence } = claim;
      this.hooks.onClaimed?.(task);
      if (task.attempts > this.opts.maxAttempts) return await settlement.settle({ kind: "exhausted", maxAttempts: this.opts.maxAttempts });
      const agent = this.deps.agents.get(task.agent);
      this.hooks.onStarted?.(taskId, task.attempts, task.steps + 1, info.labels);
      const outcome = await runLoop(this.deps, {
        task,
        fence,
        agent,
        defaultMaxSteps: this.opts.defaultMaxSteps,
        signal: controller.signal,
        ...(traceparent !== undefined ? { traceparent } : {}),
        progress: info.progress,
        interceptors: [lease.interceptor],
        settle: (o) => settlement.settle({ kind: "loop", outcome: o }),
      });
      return wakeUpOutcomeOf(outcome);
    } catch (err) {
      return await settlement.settle({ kind: "threw", err, signal: controller.signal, stopping: this.stopping });
    } finally {
      await lease.release();
      // Only now: drain() must not report the slot free while its lease is still held.
      this.running.delete(taskId);
    }
  }

  /** Stops taking work and asks running tasks to stop at their next step boundary. */
  stop(reason: unknown): void {
    this.stopping = true;
    for (const c of this.running.values()) c.abort(reason);
  }

  /** Resolves when every running task has settled, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    return this.running.size === 0;
  }
}
