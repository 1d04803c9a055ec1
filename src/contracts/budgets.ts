/**
 * A task's budgets: what an agent file's `budgets:` sets as the defaults and the
 * ceiling, what a submit may lower (`"budgets": {…}`), and what the task keeps
 * (migration 009), so every attempt, resume and redrive runs under the same ones.
 */
import { z } from "zod";

/** Each budget a task can run out of; `budget_exhausted` and a `budget_exceeded` error name one of these. */
export const BUDGET_NAMES = ["max_steps", "max_tokens", "max_input_tokens", "max_output_tokens", "max_cost_usd", "max_wall_seconds"] as const;
export const BudgetNameSchema = z.enum(BUDGET_NAMES);
export type BudgetName = z.infer<typeof BudgetNameSchema>;

/** `fail`: the task fails with `budget_exceeded`. `finish`: one last model turn without tools, then it succeeds. */
export const OnExhaustedSchema = z.enum(["finish", "fail"]);
export type OnExhausted = z.infer<typeof OnExhaustedSchema>;

const tokens = z.number().int().positive().max(1e12);

/** The per-task budgets; every one optional (unset: no limit, `max_steps` excepted, which has the planner's default). */
export const TaskBudgetsSchema = z
  .object({
    /** Steps (model turns and tool results), checked before each model call. */
    max_steps: z.number().int().positive().max(100_000).optional(),
    /** Input plus output tokens spent; checked on what was spent, so the call that crosses it is the last (the older, looser budget). */
    max_tokens: tokens.optional(),
    /** Prompt tokens (fresh, cache reads and cache writes); each call reserves its estimated prompt first. */
    max_input_tokens: tokens.optional(),
    /** Output tokens; each call reserves its `max_tokens` first. */
    max_output_tokens: tokens.optional(),
    /** USD at the price table's prices; each call reserves the price of its worst case first. */
    max_cost_usd: z.number().positive().max(1e9).optional(),
    /** Seconds since the task's first attempt started; checked before each model call and each tool start. */
    max_wall_seconds: z.number().positive().max(1e9).optional(),
    /** @default "fail" */
    on_exhausted: OnExhaustedSchema.optional(),
  })
  .strict();
export type TaskBudgets = z.infer<typeof TaskBudgetsSchema>;
