/**
 * How an attempt ends, in one place: every write that ends one (the task's
 * terminal finishTask, a releaseTask that hands it back, or an awaitApproval
 * that parks it on a call an operator must decide), the planner's
 * per-attempt and per-task metrics, and the onSettled hook. Whatever ended the
 * attempt (the loop's outcome, the attempt budget, an error) is settled here,
 * so each ending is written, counted and reported exactly once. An ending that
 * carries the checkpoint of the answer it ended on writes both in one statement
 * (`finishWithStep`), or, with a checkpoint service that predates it, the step
 * and then the outcome.
 */
import type { LoopLogger, LoopProgress, RunOutcome, TerminalOutcome } from "./attempt";
import { CheckpointTooNewError, isRetryable, LeaseLostError, messageOf, RateLimitedError, StaleFenceError, TaskCancelledError } from "../errors";
import type { TaskRecord } from "../contracts";
import type { TaskStore } from "../store/types";
import type { Metrics, TaskLabels } from "../telemetry/metrics";

export type WakeUpOutcome =
  | "ignored_unknown"
  | "ignored_terminal"
  | "ignored_leased"
  | "ignored_stopping"
  /** Nothing claimable: no task queued, or every tenant with queued work at its running cap. */
  | "ignored_unclaimable"
  | "succeeded"
  | "failed"
  | "released"
  | "abandoned"
  /** The task was cancelled under the attempt: the store already ended it, so nothing is written or retried. */
  | "cancelled"
  /** Parked on a gated call (src/approvals): the task waits, unclaimable, for an operator's decision. */
  | "awaiting_approval";

/** Hooks get the task's labels (agent, prompt_version) too, for events and metrics. */
export interface WorkerHooks {
  /** The task row as the claim returned it (before an attempt over budget is failed): its usage and steps so far. */
  onClaimed?(task: TaskRecord): void;
  onStarted?(taskId: string, attempt: number, resumedAtStep: number, labels: TaskLabels): void;
  onSettled?(taskId: string, outcome: WakeUpOutcome, detail?: RunOutcome, labels?: TaskLabels): void;
  onLeaseLost?(taskId: string, labels: TaskLabels): void;
}

/** What one attempt's settlement is measured with. */
export interface AttemptInfo {
  labels: TaskLabels;
  createdAt: string;
  progress: LoopProgress;
}

/** Whatever ended an attempt. */
export type AttemptEnd =
  /** The loop ran to an outcome. */
  | { kind: "loop"; outcome: RunOutcome }
  /** The task was claimed once more than it may be. */
  | { kind: "exhausted"; maxAttempts: number }
  /** The attempt threw; `stopping`: the planner is shutting down, which is not the task's fault. */
  | { kind: "threw"; err: unknown; signal: AbortSignal; stopping: boolean };

export interface SettleDeps {
  store: Pick<TaskStore, "finishTask" | "finishWithStep" | "appendStep" | "releaseTask" | "awaitApproval">;
  logger: LoopLogger;
  metrics?: Pick<Metrics, "taskFinished" | "attemptSettled" | "taskRetried"> | undefined;
  hooks: Pick<WorkerHooks, "onSettled">;
  /**
   * A task released after a passing failure is owed a wake-up once its backoff is over; without one it would
   * wait for the reaper, which re-publishes only once the queue has drained. @default none (the reaper's)
   */
  retryLater?(taskId: string, delayMs: number): void;
  /** @default RETRY_BACKOFF */
  backoff?: RetryBackoff;
}

export interface RetryBackoff {
  baseMs: number;
  maxMs: number;
}

/** Backoff of a retried task: 1 s after its first attempt, doubling, at most a minute. */
export const RETRY_BACKOFF: RetryBackoff = { baseMs: 1_000, maxMs: 60_000 };
/** A checkpoint from a newer build waits this long for a newer planner before an older one looks again. */
const NEWER_BUILD_WAIT_MS = 30_000;

/**
 * How long a task released after `err` waits before it may be claimed again: exponential in the attempts it
 * has had, with jitter (between half and all of it) so tasks failed by one outage do not return in step, and
 * never less than a wait the error asks for (a provider's `retry-after`).
 */
export function retryDelayMs(attempts: number, err: unknown, backoff: RetryBackoff = RETRY_BACKOFF, random: () => number = Math.random): number {
  if (err instanceof CheckpointTooNewError) return Math.min(backoff.maxMs, NEWER_BUILD_WAIT_MS);
  const exp = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
  const jittered = Math.round(exp * (0.5 + random() / 2));
  const asked = Number((err as { data?: { retryAfter?: unknown } } | null)?.data?.retryAfter);
  return Math.max(jittered, Number.isFinite(asked) && asked > 0 ? Math.min(backoff.maxMs, Math.ceil(asked * 1000)) : 0);
}

/**
 * A call of a store action that no node serves: a checkpoint service older than its caller (a rolling deploy,
 * mid-way) has no such action, and Moleculer answers ServiceNotFoundError, by name (it survives the trip over
 * the broker). With `action` (e.g. "finishWithStep"), only when it is that action that is missing.
 */
export function isMissingAction(err: unknown, action?: string): boolean {
  const e = err as { name?: unknown; data?: { action?: unknown } } | null | undefined;
  if (e?.name !== "ServiceNotFoundError") return false;
  const missing = e.data?.action;
  return action === undefined || typeof missing !== "string" || missing === action || missing.endsWith(`.${action}`);
}

/**
 * The write that ends the attempt for a loop outcome: the task's terminal write, or its park on a gated call
 * (fenced too, so a zombie cannot park a task its successor runs); an interrupted attempt leaves the task as it is.
 * An outcome's `checkpoint` goes in the terminal write (`finishWithStep`), and its step is announced once that is
 * committed: after it, listeners see the step, then (the settled hook) the task's end; never a step that was not
 * stored. A checkpoint service that predates `finishWithStep` gets the step (`appendStep`), then the outcome
 * (`finishTask`), as two writes; a store typed without it (`store` of `runLoop`'s own deps) does the same.
 */
export async function writeTerminal(
  store: Pick<TaskStore, "finishTask" | "appendStep" | "awaitApproval"> & Partial<Pick<TaskStore, "finishWithStep">>,
  taskId: string,
  fence: number,
  outcome: RunOutcome,
  logger?: LoopLogger,
): Promise<void> {
  if (outcome.kind === "interrupted") return;
  if (outcome.kind === "awaiting_approval") return store.awaitApproval(taskId, fence, outcome.approval);
  const { checkpoint } = outcome;
  const update = terminalUpdate(outcome);
  if (checkpoint === undefined) return store.finishTask(taskId, fence, update);
  const apart = async (): Promise<void> => {
    await store.appendStep(taskId, fence, checkpoint.step, checkpoint.usage);
    await store.finishTask(taskId, fence, update);
  };
  if (store.finishWithStep === undefined) {
    await apart();
  } else {
    try {
      await store.finishWithStep(taskId, fence, update, { step: checkpoint.step, usageDelta: checkpoint.usage });
    } catch (err) {
      if (!isMissingAction(err, "finishWithStep")) throw err;
      logger?.warn({ taskId, event: "task.finish_with_step_missing" }, "the checkpoint service predates finishWithStep; writing the last step and the outcome apart");
      await apart();
    }
  }
  try {
    checkpoint.announce();
  } catch (err) {
    // The task has ended: a listener's failure cannot undo that, nor make the attempt fail it again.
    logger?.warn({ taskId, event: "task.step_event_failed", err: messageOf(err) }, "a listener failed on the last step's event");
  }
}

/** The outcome as reported (the settled hook, the loop's caller): its checkpoint, once written, is not theirs. */
export function reported(outcome: RunOutcome): RunOutcome {
  if ((outcome.kind !== "succeeded" && outcome.kind !== "failed") || outcome.checkpoint === undefined) return outcome;
  const copy = { ...outcome };
  delete copy.checkpoint;
  return copy;
}

const terminalUpdate = (o: TerminalOutcome) =>
  o.kind === "succeeded"
    ? { status: "succeeded" as const, result: o.result, ...(o.budgetExhausted !== undefined ? { budget_exhausted: o.budgetExhausted } : {}) }
    : { status: "failed" as const, error: o.error };

/** What a planner reports for a loop outcome: an attempt stopped by a lost lease is abandoned, one stopped otherwise released. */
export function wakeUpOutcomeOf(outcome: RunOutcome): WakeUpOutcome {
  if (outcome.kind !== "interrupted") return outcome.kind;
  if (outcome.reason instanceof TaskCancelledError) return "cancelled";
  return outcome.reason instanceof LeaseLostError ? "abandoned" : "released";
}

/** One attempt's settlement; `fence` is set once the task is claimed. */
export class Settlement {
  private fence: number | undefined;
  private attempts = 1;

  constructor(
    private readonly deps: SettleDeps,
    private readonly taskId: string,
    private readonly info: AttemptInfo,
  ) {}

  /** `attempts`: the task's attempts, this one included (its retry backoff grows with them). */
  claimed(fence: number, attempts = 1): void {
    this.fence = fence;
    this.attempts = attempts;
  }

  async settle(end: AttemptEnd): Promise<WakeUpOutcome> {
    if (end.kind === "threw") return this.afterError(end.err, end.signal, end.stopping);
    const fence = this.fenceOrThrow();
    if (end.kind === "exhausted") {
      const outcome: TerminalOutcome = { kind: "failed", error: { type: "attempts_exhausted", message: `gave up after ${end.maxAttempts} attempts` } };
      await writeTerminal(this.deps.store, this.taskId, fence, outcome);
      return this.report("failed", outcome, this.info);
    }
    const { outcome } = end;
    if (outcome.kind !== "interrupted") {
      await writeTerminal(this.deps.store, this.taskId, fence, outcome, this.deps.logger);
    } else if (outcome.reason instanceof TaskCancelledError) {
      this.deps.logger.info({ taskId: this.taskId, event: "task.attempt_cancelled", fence }, "task cancelled; the attempt ends without a write");
    } else if (outcome.reason instanceof LeaseLostError) {
      this.deps.logger.warn({ taskId: this.taskId, event: "task.abandoned", fence, err: outcome.reason.message }, "lease lost; abandoning the task to its new holder");
    } else {
      // Stopped at a step boundary (shutdown): handed back uncounted, since that is not the task's fault.
      await this.deps.store.releaseTask(this.taskId, fence, { countAttempt: false });
    }
    return this.report(wakeUpOutcomeOf(outcome), reported(outcome), this.info);
  }

  private async afterError(err: unknown, signal: AbortSignal, stopping: boolean): Promise<WakeUpOutcome> {
    const { store, logger, metrics } = this.deps;
    const { taskId, fence, info } = this;
    if (err instanceof TaskCancelledError) {
      logger.info({ taskId, event: "task.attempt_cancelled", fence, err: messageOf(err) }, "task cancelled; the attempt ends without a write");
      return this.report("cancelled", { kind: "interrupted", reason: err }, info);
    }
    if (err instanceof StaleFenceError || err instanceof LeaseLostError || signal.reason instanceof LeaseLostError) {
      logger.warn({ taskId, event: "task.abandoned", fence, err: messageOf(err) }, "a newer lease holder owns this task; abandoning it");
      return this.report("abandoned", undefined, info);
    }
    if (fence === undefined) {
      // Nothing was claimed (the store is unreachable): the task is untouched and the reaper re-publishes it.
      logger.warn({ taskId, event: "task.claim_failed", err: messageOf(err) }, "could not claim task; leaving it to the reaper");
      return this.report("released");
    }
    if (isRetryable(err) || stopping) {
      // The attempt ends; the task is claimable again after its backoff, when its own wake-up comes.
      const delayMs = stopping ? 0 : retryDelayMs(this.attempts, err, this.deps.backoff);
      logger.warn({ taskId, event: "task.retry", fence, err: messageOf(err), retryInMs: delayMs }, "attempt ended by a passing failure; task will be retried");
      if (!stopping) metrics?.taskRetried(info.labels);
      try {
        // A checkpoint from a newer build is not the task's failure either: it waits, uncounted, for a newer planner.
        // Nor is a model turn that ran out of rate-limit allowance: the task waited its turn, it did not fail.
        const countAttempt = !stopping && !(err instanceof CheckpointTooNewError) && !(err instanceof RateLimitedError);
        await store.releaseTask(taskId, fence, { countAttempt, notBeforeMs: delayMs });
        if (!stopping) this.deps.retryLater?.(taskId, delayMs);
      } catch (releaseErr) {
        logger.warn({ taskId, event: "task.release_failed", err: messageOf(releaseErr) }, "could not release task; its lease will lapse");
      }
      // Handed back by a shutdown: reported as interrupted, so the planner publishes its wake-up at once.
      return this.report("released", stopping ? { kind: "interrupted", reason: err } : undefined, info);
    }
    const type = (err as { errorType?: unknown }).errorType;
    logger.warn({ taskId, event: "task.failed", fence, err: messageOf(err) }, "task failed");
    const outcome: TerminalOutcome = { kind: "failed", error: { type: typeof type === "string" ? type : "internal_error", message: messageOf(err) } };
    await writeTerminal(store, taskId, fence, outcome);
    return this.report("failed", outcome, info);
  }

  private fenceOrThrow(): number {
    if (this.fence === undefined) throw new Error(`task ${this.taskId} settled before it was claimed`);
    return this.fence;
  }

  /** `info`: the attempt that settles (absent when none started); its metrics are recorded here, in the planner. */
  private report(outcome: WakeUpOutcome, detail?: RunOutcome, info?: AttemptInfo): WakeUpOutcome {
    if (info) this.record(outcome, detail, info);
    this.deps.hooks.onSettled?.(this.taskId, outcome, detail, info?.labels);
    return outcome;
  }

  private record(outcome: WakeUpOutcome, detail: RunOutcome | undefined, info: AttemptInfo): void {
    const metrics = this.deps.metrics;
    if (!metrics) return;
    if (outcome === "succeeded" || outcome === "failed" || outcome === "released" || outcome === "abandoned") metrics.attemptSettled(info.labels, outcome);
    // A parked attempt hands its task back, as a release does; it waits for a person, not for a retry.
    else if (outcome === "awaiting_approval") metrics.attemptSettled(info.labels, "released");
    if (outcome !== "succeeded" && outcome !== "failed") return;
    metrics.taskFinished(info.labels, outcome, {
      ...(detail?.kind === "failed" ? { errorType: detail.error.type } : {}),
      durationS: (Date.now() - Date.parse(info.createdAt)) / 1000,
      steps: info.progress.steps,
      toolCalls: info.progress.toolCalls,
    });
  }
}
