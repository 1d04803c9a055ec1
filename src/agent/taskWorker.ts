/**
 * One planner slot's handling of a wake-up: take the task's lease, claim a new
 * fencing token, keep the lease alive while the loop runs, and settle the
 * attempt. A wake-up is only a hint: a duplicate, a late one or one for a task
 * another planner holds is dropped harmlessly.
 */
import type { AgentCatalog } from "./definition";
import { runLoop, type LoopDeps, type LoopProgress, type RunOutcome } from "./runLoop";
import { TERMINAL_STATUSES } from "../domain";
import { isRetryable, LeaseLostError, messageOf, StaleFenceError } from "../errors";
import type { LeaseManager } from "../lease/types";
import type { TaskStore } from "../store/types";
import type { Metrics, TaskLabels } from "../telemetry/metrics";

export interface WorkerOptions {
  owner: string;
  leaseTtlMs: number;
  leaseRenewMs: number;
  maxAttempts: number;
  defaultMaxSteps: number;
  /** Monotonic clock (ms) the lease deadline is kept on; tests pass their fake one. @default performance.now */
  now?: () => number;
}

export type WakeUpOutcome =
  | "ignored_unknown"
  | "ignored_terminal"
  | "ignored_leased"
  | "ignored_stopping"
  | "succeeded"
  | "failed"
  | "released"
  | "abandoned";

/** Hooks get the task's labels (agent, prompt_version) too, for events and metrics. */
export interface WorkerHooks {
  onStarted?(taskId: string, attempt: number, resumedAtStep: number, labels: TaskLabels): void;
  onSettled?(taskId: string, outcome: WakeUpOutcome, detail?: RunOutcome, labels?: TaskLabels): void;
  onLeaseLost?(taskId: string, labels: TaskLabels): void;
}

export type WorkerMetrics = Pick<Metrics, "taskFinished" | "attemptSettled" | "taskRetried" | "leaseLost" | "taskResumed" | "duplicateToolCall" | "rateLimitWait">;

/** What one attempt's settlement is measured with. */
interface AttemptInfo {
  labels: TaskLabels;
  createdAt: string;
  progress: LoopProgress;
}

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
    const { store, leases } = this.deps;
    const peek = await store.getTask(taskId);
    if (!peek) return "ignored_unknown";
    if (TERMINAL_STATUSES.includes(peek.status)) return "ignored_terminal";
    const info: AttemptInfo = {
      labels: { agent: peek.agent, prompt_version: peek.prompt_version },
      createdAt: peek.created_at,
      progress: { steps: peek.steps, toolCalls: 0 },
    };
    const ttl = this.opts.leaseTtlMs;
    const now = this.opts.now ?? (() => performance.now());
    // Until when the lease is surely ours, on this process's monotonic clock: TTL after the last
    // acquire or renew that succeeded was *sent* (Redis counts the TTL from a later moment).
    let leaseSureUntil = now() + ttl;
    if (!(await leases.acquire(taskId, this.opts.owner, ttl))) return "ignored_leased";
    if (this.stopping) {
      // stop() came while we read the task or took the lease; its abort could not reach us, so start nothing.
      await this.releaseLease(taskId);
      return "ignored_stopping";
    }

    const controller = new AbortController();
    this.running.set(taskId, controller);
    let fence: number | undefined;
    const heartbeat = setInterval(() => {
      const sent = now();
      leases.renew(taskId, this.opts.owner, ttl).then(
        (held) => {
          if (held) leaseSureUntil = Math.max(leaseSureUntil, sent + ttl);
          if (!held && !controller.signal.aborted) {
            this.deps.metrics?.leaseLost(info.labels);
            this.hooks.onLeaseLost?.(taskId, info.labels);
            controller.abort(new LeaseLostError(`lease on task ${taskId} lost`, { taskId }));
          }
        },
        (err: unknown) => {
          // Redis unreachable: keep working while the lease is surely ours (see leaseSureUntil); the fence guards writes.
          this.deps.logger.warn({ taskId, event: "lease.renew_failed", err: messageOf(err) }, "lease renewal failed");
        },
      );
    }, this.opts.leaseRenewMs);
    heartbeat.unref();
    /**
     * Fencing refuses a zombie's writes, but not its calls. A process paused past its lease (SIGSTOP,
     * a VM freeze, a GC storm) resumes where it was, possibly about to call the model or run a tool
     * that its successor has already made and checkpointed, before its overdue heartbeat can tell it
     * the lease is gone. So no call starts once the lease may have lapsed: the attempt is abandoned.
     */
    const leaseCheck = () => {
      if (now() < leaseSureUntil) return;
      const lost = new LeaseLostError(`lease on task ${taskId} not renewed for ${ttl} ms; it may have lapsed`, { taskId });
      if (!controller.signal.aborted) controller.abort(lost);
      throw lost;
    };
    const loopDeps = {
      ...this.deps,
      llm: {
        complete: (req: Parameters<LoopDeps["llm"]["complete"]>[0]) => {
          leaseCheck();
          return this.deps.llm.complete(req);
        },
      },
      tools: {
        run: (call: Parameters<LoopDeps["tools"]["run"]>[0]) => {
          leaseCheck();
          return this.deps.tools.run(call);
        },
      },
    };

    try {
      const claim = await store.claimTask(taskId, this.opts.owner);
      if (!claim) return "ignored_terminal";
      fence = claim.fence;
      const { task } = claim;
      if (task.attempts > this.opts.maxAttempts) {
        const error = { type: "attempts_exhausted", message: `gave up after ${this.opts.maxAttempts} attempts` };
        await store.finishTask(taskId, fence, { status: "failed", error });
        return this.settle(taskId, "failed", { kind: "failed", error }, info);
      }
      const agent = this.deps.agents.get(task.agent);
      this.hooks.onStarted?.(taskId, task.attempts, task.steps + 1, info.labels);
      const outcome = await runLoop(loopDeps, {
        task,
        fence,
        agent,
        defaultMaxSteps: this.opts.defaultMaxSteps,
        signal: controller.signal,
        ...(traceparent !== undefined ? { traceparent } : {}),
        progress: info.progress,
      });
      if (outcome.kind === "interrupted") {
        if (outcome.reason instanceof LeaseLostError) {
          this.deps.logger.warn({ taskId, event: "task.abandoned", fence, err: outcome.reason.message }, "lease lost; abandoning the task to its new holder");
          return this.settle(taskId, "abandoned", outcome, info);
        }
        await store.releaseTask(taskId, fence, { countAttempt: false });
        return this.settle(taskId, "released", outcome, info);
      }
      return this.settle(taskId, outcome.kind, outcome, info);
    } catch (err) {
      return await this.onError(taskId, fence, err, controller.signal, info);
    } finally {
      clearInterval(heartbeat);
      await this.releaseLease(taskId);
      // Only now: drain() must not report the slot free while its lease is still held.
      this.running.delete(taskId);
    }
  }

  private async releaseLease(taskId: string): Promise<void> {
    await this.deps.leases.release(taskId, this.opts.owner).catch((err: unknown) => {
      this.deps.logger.warn({ taskId, event: "lease.release_failed", err: messageOf(err) }, "lease release failed; it will lapse");
    });
  }

  /** `info`: the attempt that settles (absent when none started); its metrics are recorded here, in the planner. */
  private settle(taskId: string, outcome: WakeUpOutcome, detail?: RunOutcome, info?: AttemptInfo): WakeUpOutcome {
    if (info) this.record(outcome, detail, info);
    this.hooks.onSettled?.(taskId, outcome, detail, info?.labels);
    return outcome;
  }

  private record(outcome: WakeUpOutcome, detail: RunOutcome | undefined, info: AttemptInfo): void {
    const metrics = this.deps.metrics;
    if (!metrics) return;
    if (outcome === "succeeded" || outcome === "failed" || outcome === "released" || outcome === "abandoned") metrics.attemptSettled(info.labels, outcome);
    if (outcome !== "succeeded" && outcome !== "failed") return;
    metrics.taskFinished(info.labels, outcome, {
      ...(detail?.kind === "failed" ? { errorType: detail.error.type } : {}),
      durationS: (Date.now() - Date.parse(info.createdAt)) / 1000,
      steps: info.progress.steps,
      toolCalls: info.progress.toolCalls,
    });
  }

  private async onError(taskId: string, fence: number | undefined, err: unknown, signal: AbortSignal, info: AttemptInfo): Promise<WakeUpOutcome> {
    const { store, logger } = this.deps;
    if (err instanceof StaleFenceError || err instanceof LeaseLostError || signal.reason instanceof LeaseLostError) {
      logger.warn({ taskId, event: "task.abandoned", fence, err: messageOf(err) }, "a newer lease holder owns this task; abandoning it");
      return this.settle(taskId, "abandoned", undefined, info);
    }
    if (fence === undefined) {
      // Nothing was claimed (the store is unreachable): the task is untouched and the reaper re-publishes it.
      logger.warn({ taskId, event: "task.claim_failed", err: messageOf(err) }, "could not claim task; leaving it to the reaper");
      return this.settle(taskId, "released");
    }
    if (isRetryable(err) || this.stopping) {
      // The attempt ends; the reaper re-publishes the wake-up after its delay, which is our backoff.
      logger.warn({ taskId, event: "task.retry", fence, err: messageOf(err) }, "attempt ended by a passing failure; task will be retried");
      if (!this.stopping) this.deps.metrics?.taskRetried(info.labels);
      try {
        await store.releaseTask(taskId, fence, { countAttempt: !this.stopping });
      } catch (releaseErr) {
        logger.warn({ taskId, event: "task.release_failed", err: messageOf(releaseErr) }, "could not release task; its lease will lapse");
      }
      return this.settle(taskId, "released", undefined, info);
    }
    const type = (err as { errorType?: unknown }).errorType;
    logger.warn({ taskId, event: "task.failed", fence, err: messageOf(err) }, "task failed");
    const error = { type: typeof type === "string" ? type : "internal_error", message: messageOf(err) };
    await store.finishTask(taskId, fence, { status: "failed", error });
    return this.settle(taskId, "failed", { kind: "failed", error }, info);
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
