/**
 * The arithmetic of budgets that hold: before a model call, its worst case (the
 * estimated prompt, its `max_tokens` of output, and the price of both at the
 * dearest rate a prompt token can have) is checked against what remains of each
 * budget. A call that could overshoot is not made, so the regular calls of a task
 * stay within its budgets and only the wrap-up turn (`on_exhausted: finish`) may
 * go past them, by at most one call. Pure functions: the loop's meter (meter.ts)
 * and the tests share them.
 */
import type { BudgetName, TaskBudgets, Usage } from "../contracts";
import type { PriceTable } from "../llm/pricing";

/** What a task has spent, as budgets count it. */
export interface Spent {
  /** Prompt tokens: fresh input, cache reads and cache writes. */
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

/** The most one model call can spend. */
export type WorstCase = Spent;

export interface Exhaustion {
  budget: BudgetName;
  limit: number;
  /** Why, in words: the task's error message in `fail` mode, the log line in `finish` mode. */
  message: string;
}

/** The wrap-up turn's `max_tokens` when the output-token budget is what ran out: never less than this. */
export const WRAP_UP_MIN_TOKENS = 256;

export const noSpending = (): Spent => ({ inputTokens: 0, outputTokens: 0, costUsd: 0 });

export function spentOf(u: Usage): Spent {
  return { inputTokens: u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens, outputTokens: u.output_tokens, costUsd: u.cost_usd };
}

export function addSpent(a: Spent, b: Spent): Spent {
  return { inputTokens: a.inputTokens + b.inputTokens, outputTokens: a.outputTokens + b.outputTokens, costUsd: a.costUsd + b.costUsd };
}

/**
 * A call's worst case: `inputTokens` of prompt and `maxTokens` of output, priced as if every prompt token
 * were billed at the model's dearest input rate (a cache write costs more than fresh input).
 */
export function worstCase(prices: PriceTable, model: string, inputTokens: number, maxTokens: number): WorstCase {
  const zero = { input_tokens: 0, output_tokens: maxTokens, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
  const costUsd = Math.max(
    prices.cost(model, { ...zero, input_tokens: inputTokens }),
    prices.cost(model, { ...zero, cache_creation_input_tokens: inputTokens }),
    prices.cost(model, { ...zero, cache_read_input_tokens: inputTokens }),
  );
  return { inputTokens, outputTokens: maxTokens, costUsd };
}

const usd = (n: number) => `$${Number(n.toFixed(6))}`;

/**
 * The first budget that `call` could take past its limit given `spent` (durable usage plus this attempt's),
 * or undefined when the call fits every budget. Cost first: it is what an operator caps most often.
 */
export function overshootBy(budgets: TaskBudgets, spent: Spent, call: WorstCase): Exhaustion | undefined {
  const { max_cost_usd: cost, max_input_tokens: input, max_output_tokens: output } = budgets;
  if (cost !== undefined && spent.costUsd + call.costUsd > cost) {
    return {
      budget: "max_cost_usd",
      limit: cost,
      message: `cost budget of ${usd(cost)} would be exceeded by the next model call (spent ${usd(spent.costUsd)}, the call may cost up to ${usd(call.costUsd)})`,
    };
  }
  if (input !== undefined && spent.inputTokens + call.inputTokens > input) {
    return {
      budget: "max_input_tokens",
      limit: input,
      message: `input-token budget of ${input} would be exceeded by the next model call (spent ${spent.inputTokens}, its prompt is about ${call.inputTokens})`,
    };
  }
  if (output !== undefined && spent.outputTokens + call.outputTokens > output) {
    return {
      budget: "max_output_tokens",
      limit: output,
      message: `output-token budget of ${output} would be exceeded by the next model call (spent ${spent.outputTokens}, the call may write up to ${call.outputTokens})`,
    };
  }
  return undefined;
}

/** The step budget, as it always was: spent once the next step's number is past it. */
export function stepsSpent(maxSteps: number, nextStep: number): Exhaustion | undefined {
  if (nextStep <= maxSteps) return undefined;
  return { budget: "max_steps", limit: maxSteps, message: `step budget of ${maxSteps} spent before the agent finished` };
}

/** `max_tokens` (input plus output), as it always was: checked on what was spent, so the call crossing it is the last. */
export function tokensSpent(maxTokens: number | undefined, spent: Spent): Exhaustion | undefined {
  if (maxTokens === undefined || spent.inputTokens + spent.outputTokens < maxTokens) return undefined;
  return { budget: "max_tokens", limit: maxTokens, message: `token budget of ${maxTokens} spent before the agent finished` };
}

/** Wall time since the task's first attempt started. */
export function wallSpent(maxWallSeconds: number | undefined, startedAtMs: number, nowMs: number): Exhaustion | undefined {
  if (maxWallSeconds === undefined) return undefined;
  const elapsedS = (nowMs - startedAtMs) / 1000;
  if (elapsedS < maxWallSeconds) return undefined;
  return {
    budget: "max_wall_seconds",
    limit: maxWallSeconds,
    message: `wall-time budget of ${maxWallSeconds} s spent (the task started ${Math.round(elapsedS)} s ago)`,
  };
}

/**
 * The wrap-up turn's `max_tokens`: the tier's, or, when the output-token budget is what ran out, what remains of
 * it (never less than `WRAP_UP_MIN_TOKENS`, never more than the tier's). So the wrap-up overshoots that budget
 * by `WRAP_UP_MIN_TOKENS` at most.
 */
export function wrapUpMaxTokens(tierMaxTokens: number, budgets: TaskBudgets, spent: Spent, exhausted: BudgetName): number {
  const limit = budgets.max_output_tokens;
  if (exhausted !== "max_output_tokens" || limit === undefined) return tierMaxTokens;
  return Math.min(tierMaxTokens, Math.max(WRAP_UP_MIN_TOKENS, limit - spent.outputTokens));
}
