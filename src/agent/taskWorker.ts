/**
 * One planner slot's handling of a wake-up: claim a task with a new fencing
 * token, take its lease, run the loop while the lease is kept alive, and settle
 * the attempt. A wake-up is a ticket, not an order: it claims the fairest queued
 * task (src/store/fairClaim.ts), whichever it names, so one tenant's backlog of
 * wake-ups cannot hold another tenant's task back. Only a wake-up naming a
 * `running` task (the reaper's, for a task whose lease lapsed) takes over that
 * very task. One wake-up per queued task keeps the counts right; a wake-up that
 * finds nothing claimable is dropped harmlessly.
 *
 * Each attempt has its own call signal (combined with the process-wide one a
 * shutdown aborts), so `abortTask` can cut one cancelled task's calls short and
 * leave the others running (src/cancel/attemptCancel.ts).
 */
import { randomUUID } from "node:crypto";
import type { AgentCatalog } from "./definition";
import { InterceptorChain } from "./interceptors";
import { LeaseKeeper } from "./leaseKeeper";
import { LeaseRenewer } from "../lease/renewer";
import { CallLimit } from "./admission";
import { runLoop, type LoopDeps } from "./runLoop";
import { Settlement, wakeUpOutcomeOf, type AttemptInfo, type RetryBackoff, type WakeUpOutcome, type WorkerHooks } from "./settle";
import { TERMINAL_STATUSES, type ClaimResult, type RunningCaps, type TaskRecord, type WakeUp } from "../contracts";
import { StaleFenceError, messageOf } from "../errors";
import { AttemptCancel, RecentIds } from "../cancel";
import { capOf, NO_CAPS } from "../store/fairClaim";
import { pinnedAgent } from "../rollout/versions";
import type { LeaseManager } from "../lease/types";
import type { TaskStore } from "../store/types";
import type { Metrics } from "../telemetry/metrics";

export type { WakeUpOutcome, WorkerHooks } from "./settle";

/** Store reads and claims a worker's wake-ups make at once, whatever its slots (see CallLimit). */
const CONCURRENT_CLAIMS = 8;

/** A retry's wake-up comes this long after its backoff ends, so the claim it makes finds the task due. */
const RETRY_WAKE_SLACK_MS = 50;

export interface WorkerOptions {
  /** The node id: recorded as the task's `lease_owner`; the Redis lease owner is this plus a per-attempt token. */
  owner: string;
  leaseTtlMs: number;
  leaseRenewMs: number;
  maxAttempts: number;
  defaultMaxSteps: number;
  /** Monotonic clock (ms) the lease deadline is kept on; tests pass their fake one. @default performance.now */
  now?: () => number;
  /** The tenants' running caps a claim honours (CLAWFLEET_TENANT_MAX_RUNNING and its overrides). @default no caps */
  caps?: RunningCaps;
  /** Backoff of a task released after a passing failure (CLAWFLEET_RETRY_BACKOFF_MS). @default RETRY_BACKOFF */
  retryBackoff?: RetryBackoff;
}

export type WorkerMetrics = Pick<Metrics, "taskFinished" | "attemptSettled" | "taskRetried" | "leaseLost" | "taskResumed" | "duplicateToolCall" | "rateLimitWait">;

/** One attempt in flight: its step controller (shutdown, lost lease, cancel) and its cancel. */
interface Running {
  controller: AbortController;
  cancel: AttemptCancel;
}

export class TaskWorker {
  private readonly running = new Map<string, Running>();
  /** Aborts the model and tool calls in flight (`abortCalls`): a shutdown whose step drain is over. */
  private readonly calls = new AbortController();
  /** Tasks cancelled lately: an attempt at one that registers after its abort came is aborted at once. */
  private readonly cancelled = new RecentIds();
  private stopping = false;
  /** One heartbeat renews every lease this worker's attempts hold, in one round trip. */
  private readonly renewer: LeaseRenewer;
  private readonly claims = new CallLimit(CONCURRENT_CLAIMS);

  constructor(
    private readonly deps: LoopDeps & {
      store: TaskStore;
      leases: LeaseManager;
      agents: AgentCatalog;
      metrics?: WorkerMetrics;
      /** Publishes the wake-ups a slot owes: a task handed back unstarted, a capped tenant's freed slot. @default none published */
      wakeUps?: { publish(w: WakeUp): Promise<void> };
    },
    private readonly opts: WorkerOptions,
    private readonly hooks: WorkerHooks = {},
  ) {
    const { leases, logger } = deps;
    this.renewer = new LeaseRenewer({ leases, logger, ttlMs: opts.leaseTtlMs, renewMs: opts.leaseRenewMs, now: this.now });
  }

  /** The monotonic clock lease deadlines are kept on. */
  private get now(): () => number {
    return this.opts.now ?? (() => performance.now());
  }

  get activeTasks(): number {
    return this.running.size;
  }

  /**
   * `reason`: why the wake-up was sent; only the reaper's (`reaped`) may take over a `running` task. Any
   * other wake-up naming a running task is a ticket whose task another ticket already claimed: taking it
   * over could beat that claimer to the lease in the instant between its claim and its lease, and run the
   * task twice over. `traceparent`: the wake-up's trace context, for a taken-over task whose row holds none.
   */
  async handle(taskId: string, traceparent?: string, reason: WakeUp["reason"] = "reaped"): Promise<WakeUpOutcome> {
    if (this.stopping) return "ignored_stopping";
    // Only a take-over needs the task read first (is it running?). Any other ticket claims at once: the read
    // that names a fruitless ticket's outcome is made only when the claim finds nothing, so a wake-up that
    // finds work costs its task no extra round trip (and no extra commit).
    if (reason !== "reaped") return this.claimFairest(taskId);
    const seen = await this.claims.run(() => this.deps.store.getTask(taskId));
    if (seen?.status === "running") {
      const took = await this.takeOver(seen, traceparent);
      // Its lease is held: not an orphan after all (the reaper named it while queued, and another ticket claimed
      // it since). The ticket still stands for one queued task: dropped here, that task would wait a sweep.
      if (took !== "ignored_leased") return took;
    }
    return this.claimFairest(taskId, seen);
  }

  /**
   * The ticket: the claim comes first (one statement, SKIP LOCKED), then the lease of the task it took.
   * `seen`: the named task as already read; when the claim finds nothing, it names the outcome (read now
   * if not given).
   */
  private async claimFairest(taskId: string, seen?: TaskRecord | null): Promise<WakeUpOutcome> {
    if (this.stopping) return "ignored_stopping";
    const claim = await this.claims.run(() => this.deps.store.claimNext(this.opts.owner, this.opts.caps ?? NO_CAPS));
    if (!claim) {
      const named = seen !== undefined ? seen : await this.claims.run(() => this.deps.store.getTask(taskId));
      if (named === null) return "ignored_unknown";
      return TERMINAL_STATUSES.includes(named.status) ? "ignored_terminal" : "ignored_unclaimable";
    }
    const { task } = claim;
    const controller = new AbortController();
    const info = attemptInfo(task);
    const lease = this.leaseKeeper(task.id, info, controller);
    const leased = await lease.acquire();
    if (!leased || this.stopping) {
      // A take-over of this task holds its lease (it claims after us, with a newer fence), or stop() came: run
      // nothing, hand the task back uncounted and with its wake-up, as a shutdown does.
      if (leased) await lease.release();
      await this.handBack(task.id, claim.fence);
      return leased ? "ignored_stopping" : "ignored_leased";
    }
    return this.attempt(task, info, lease, controller, async () => claim);
  }

  /** A running task without a live lease: its lease first, then a claim of that task by id. */
  private async takeOver(seen: TaskRecord, traceparent: string | undefined): Promise<WakeUpOutcome> {
    const info = attemptInfo(seen);
    const controller = new AbortController();
    const lease = this.leaseKeeper(seen.id, info, controller);
    if (!(await lease.acquire())) return "ignored_leased";
    if (this.stopping) {
      // stop() came while we read the task or took the lease; its abort could not reach us, so start nothing.
      await lease.release();
      return "ignored_stopping";
    }
    return this.attempt(seen, info, lease, controller, () => this.deps.store.claimTask(seen.id, this.opts.owner), traceparent);
  }

  private leaseKeeper(taskId: string, info: AttemptInfo, controller: AbortController): LeaseKeeper {
    const { logger, metrics } = this.deps;
    return new LeaseKeeper(
      { leases: this.deps.leases, renewer: this.renewer, logger, metrics, onLeaseLost: (id, labels) => this.hooks.onLeaseLost?.(id, labels) },
      {
        taskId,
        // Per attempt, not per node: two slots of one planner must never renew or release each other's lease.
        owner: `${this.opts.owner}:${randomUUID()}`,
        ttlMs: this.opts.leaseTtlMs,
        now: this.now,
        labels: info.labels,
      },
      controller,
    );
  }

  /** One attempt on a leased task: `claim` gives the fence (already taken, or taken now), then the loop runs and settles. */
  private async attempt(
    seen: Pick<TaskRecord, "id" | "tenant">,
    info: AttemptInfo,
    lease: LeaseKeeper,
    controller: AbortController,
    claimIt: () => Promise<ClaimResult | null>,
    traceparent?: string,
  ): Promise<WakeUpOutcome> {
    const { store, logger, metrics } = this.deps;
    const taskId = seen.id;
    const cancel = new AttemptCancel({ store, prices: this.deps.prices, logger }, taskId, controller, this.calls.signal);
    this.running.set(taskId, { controller, cancel });
    // Its abort may have come between the claim and now: the attempt then starts no call at all.
    if (this.cancelled.has(taskId)) cancel.abort();
    lease.keep();
    const settlement = new Settlement({ store, logger, metrics, hooks: this.hooks, retryLater: (id, ms) => this.wakeAfter(id, ms), ...(this.opts.retryBackoff ? { backoff: this.opts.retryBackoff } : {}) },
      taskId,
      info,
    );
    try {
      const claim = await claimIt();
      if (!claim) return "ignored_terminal";
      settlement.claimed(claim.fence, claim.task.attempts);
      const { task, fence } = claim;
      this.hooks.onClaimed?.(task);
      if (task.attempts > this.opts.maxAttempts) return await settlement.settle({ kind: "exhausted", maxAttempts: this.opts.maxAttempts });
      // The version the task was submitted with, on every attempt (src/rollout/versions.ts).
      const agent = await pinnedAgent(this.deps, task);
      this.hooks.onStarted?.(taskId, task.attempts, task.steps + 1, info.labels);
      // The cancel's check wraps the base clients, innermost: nothing can await between it and the send.
      const guard = new InterceptorChain([cancel.interceptor]);
      const deps = { ...this.deps, llm: guard.llm(this.deps.llm), tools: guard.tools(this.deps.tools) };
      const outcome = await runLoop(deps, {
        task,
        fence,
        agent,
        defaultMaxSteps: this.opts.defaultMaxSteps,
        signal: controller.signal,
        callSignal: cancel.callSignal,
        ...(traceparent !== undefined ? { traceparent } : {}),
        progress: info.progress,
        interceptors: [lease.interceptor],
        // A cancelled attempt writes nothing more, whatever the loop ended with: the store has ended the task (and
        // bumped its fence, which would refuse an answer still to be written with the outcome anyway).
        settle: (o) => settlement.settle({ kind: "loop", outcome: cancel.cancelled ? { kind: "interrupted", reason: cancel.cancelled } : o }),
      });
      return wakeUpOutcomeOf(cancel.cancelled ? { kind: "interrupted", reason: cancel.cancelled } : outcome);
    } catch (err) {
      // A write refused by the cancel's fence bump, or a call the executor refused: the attempt was cancelled.
      return await settlement.settle({ kind: "threw", err: cancel.cancelled ?? err, signal: controller.signal, stopping: this.stopping });
    } finally {
      await lease.release();
      // Only now: drain() must not report the slot free while its lease is still held.
      this.running.delete(taskId);
      await this.wakeTenant(seen.tenant);
    }
  }

  /**
   * The wake-up of a task released for a retry, once its backoff is over (a little after, so the claim finds
   * it due). Lost with this process, it is the reaper's to re-publish.
   */
  private wakeAfter(taskId: string, delayMs: number): void {
    const wakeUps = this.deps.wakeUps;
    if (!wakeUps) return;
    setTimeout(() => void wakeUps.publish({ taskId, reason: "retry" }), delayMs + RETRY_WAKE_SLACK_MS).unref();
  }

  /** A claimed task this slot will not run goes back to `queued` uncounted, with a wake-up of its own. */
  private async handBack(taskId: string, fence: number): Promise<void> {
    try {
      await this.deps.store.releaseTask(taskId, fence, { countAttempt: false });
    } catch (err) {
      // StaleFenceError: a take-over claimed it after us and runs it. Otherwise its lease lapses and the reaper takes it over.
      if (!(err instanceof StaleFenceError)) this.deps.logger.warn({ taskId, event: "task.release_failed", err: messageOf(err) }, "could not hand back a claimed task");
      return;
    }
    await this.deps.wakeUps?.publish({ taskId, reason: "released" });
  }

  /**
   * A slot of `tenant` is free. When the tenant has a running cap and queued work, wake a planner for it:
   * its queued tasks' own wake-ups may have found it at its cap and been dropped. The reaper's sweep of
   * stale queued tasks stays the backstop for a wake-up lost here.
   */
  private async wakeTenant(tenant: string): Promise<void> {
    const { wakeUps, store, logger } = this.deps;
    if (!wakeUps || capOf(this.opts.caps ?? NO_CAPS, tenant) === null) return;
    try {
      const head = await store.queuedHead(tenant);
      if (head !== null) await wakeUps.publish({ taskId: head, reason: "released" });
    } catch (err) {
      logger.warn({ tenant, event: "tenant.wake_failed", err: messageOf(err) }, "could not wake the tenant's queued work; the reaper will");
    }
  }

  /** Stops taking work and asks running tasks to stop at their next step boundary. */
  stop(reason: unknown): void {
    this.stopping = true;
    for (const r of this.running.values()) r.controller.abort(reason);
  }

  /**
   * The task was cancelled (the store has ended it): its attempt here, if any, starts no model or tool call
   * from now on, its calls in flight are aborted, and it ends without a write. A task not running here is
   * remembered a while, in case its attempt registers after this. True when an attempt here was aborted.
   */
  abortTask(taskId: string, reason?: string): boolean {
    this.cancelled.add(taskId);
    const r = this.running.get(taskId);
    if (!r) return false;
    r.cancel.abort(reason);
    return true;
  }

  /**
   * After `stop()`, for attempts still inside a call when their step drain is over: their model calls are
   * abandoned (and cancelled at the gateway), their tool calls cancelled where the executor can do so safely;
   * each attempt then ends interrupted and is released uncounted, like one stopped at a step boundary.
   */
  abortCalls(reason: unknown): void {
    this.calls.abort(reason);
  }

  /** Resolves when every running task has settled, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    return this.running.size === 0;
  }
}

function attemptInfo(task: TaskRecord): AttemptInfo {
  return {
    labels: { agent: task.agent, prompt_version: task.prompt_version },
    createdAt: task.created_at,
    progress: { steps: task.steps, toolCalls: 0 },
  };
}
