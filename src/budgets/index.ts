/** Budgets that hold: per-task limits reserved before every model call, and an agent's daily cost cap. */
export { budgetsOf, effectiveBudgets, type AgentBudgets } from "./limits";
export { BudgetMeter, exhaustedError, exhaustionOf, type CallShape, type MeterOptions, type Reservation } from "./meter";
export {
  addSpent,
  noSpending,
  overshootBy,
  spentOf,
  stepsSpent,
  tokensSpent,
  wallSpent,
  worstCase,
  wrapUpMaxTokens,
  WRAP_UP_MIN_TOKENS,
  type Exhaustion,
  type Spent,
  type WorstCase,
} from "./reservation";
export { wrapUpInstruction, wrapUpMessages } from "./wrapUp";
export { DailyCostGate, DAILY_COST_TTL_MS, secondsUntilUtcMidnight, utcDayStart, type AgentCostSince } from "./dailyCap";
