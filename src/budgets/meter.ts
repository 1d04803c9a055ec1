/**
 * One attempt's view of its task's budgets. It starts from the task's durable
 * usage (the store adds each checkpoint's usage to the task in the same commit,
 * so earlier attempts' spending is counted however the task was resumed), adds
 * what this attempt spends, and answers before every model call whether the
 * call's worst case still fits.
 */
import type { OnExhausted, TaskBudgets, TaskRecord, Usage } from "../contracts";
import type { MessageParam, ToolSpec } from "../contracts";
import { BudgetExceededError } from "../errors";
import type { PriceTable } from "../llm/pricing";
import { InputTokenEstimator } from "../ratelimit";
import { addSpent, overshootBy, spentOf, wallSpent, worstCase, wrapUpMaxTokens, type Exhaustion, type Spent } from "./reservation";

/** Learned prompt-size ratios, shared by the attempts of a process so each starts calibrated. */
const sharedEstimator = new InputTokenEstimator();

export interface MeterOptions {
  prices: PriceTable;
  /** @default one per process */
  estimator?: InputTokenEstimator;
  /** Wall clock, ms since the epoch. @default Date.now */
  now?: () => number;
}

/** A model call as the meter prices it. */
export interface CallShape {
  model: string;
  maxTokens: number;
  system: string;
  messages: readonly MessageParam[];
  tools: readonly ToolSpec[];
}

/** Handed back by `reserve`, settled with the call's actual usage. */
export interface Reservation {
  model: string;
  raw: number;
}

/** A budget ran out: thrown where a call is refused, caught by the loop, which fails or wraps up. */
export function exhaustedError(e: Exhaustion): BudgetExceededError {
  return new BudgetExceededError(e.message, { budget: e.budget, limit: e.limit });
}

/** The budget named by a BudgetExceededError the meter threw. */
export function exhaustionOf(err: unknown): Exhaustion | undefined {
  if (!(err instanceof BudgetExceededError)) return undefined;
  const data = err.data as { budget?: unknown; limit?: unknown } | undefined;
  if (typeof data?.budget !== "string" || typeof data.limit !== "number") return undefined;
  return { budget: data.budget as Exhaustion["budget"], limit: data.limit, message: err.message };
}

export class BudgetMeter {
  private spentSoFar: Spent;
  private readonly startedAtMs: number;
  private readonly estimator: InputTokenEstimator;
  private readonly now: () => number;

  constructor(
    readonly budgets: TaskBudgets,
    task: Pick<TaskRecord, "usage" | "started_at">,
    private readonly opts: MeterOptions,
  ) {
    this.spentSoFar = spentOf(task.usage);
    this.now = opts.now ?? Date.now;
    // A claimed task has started_at (its first claim's time); a task handed to the loop unclaimed starts now.
    this.startedAtMs = task.started_at === null ? this.now() : Date.parse(task.started_at);
    this.estimator = opts.estimator ?? sharedEstimator;
  }

  get onExhausted(): OnExhausted {
    return this.budgets.on_exhausted ?? "fail";
  }

  /** Durable usage at the claim plus this attempt's. */
  get spent(): Spent {
    return this.spentSoFar;
  }

  /** The wall-time budget, checked before each model call and each tool start. */
  wall(): Exhaustion | undefined {
    return wallSpent(this.budgets.max_wall_seconds, this.startedAtMs, this.now());
  }

  /** Before a model call: throws BudgetExceededError (`data.budget`) when the call could overshoot a budget. */
  reserve(call: CallShape): Reservation {
    const wall = this.wall();
    if (wall) throw exhaustedError(wall);
    const { tokens, raw } = this.estimator.estimate(call.model, call);
    const over = overshootBy(this.budgets, this.spentSoFar, worstCase(this.opts.prices, call.model, tokens, call.maxTokens));
    if (over) throw exhaustedError(over);
    return { model: call.model, raw };
  }

  /** The wrap-up turn is not reserved (it is the one call allowed over); it is counted, and calibrates, all the same. */
  estimateOnly(call: CallShape): Reservation {
    return { model: call.model, raw: this.estimator.estimate(call.model, call).raw };
  }

  /** After the call: what it actually spent. */
  settle(r: Reservation, usage: Usage): void {
    const actual = spentOf(usage);
    this.estimator.observe(r.model, r.raw, actual.inputTokens);
    this.spentSoFar = addSpent(this.spentSoFar, actual);
  }

  wrapUpMaxTokens(tierMaxTokens: number, exhausted: Exhaustion): number {
    return wrapUpMaxTokens(tierMaxTokens, this.budgets, this.spentSoFar, exhausted.budget);
  }
}
