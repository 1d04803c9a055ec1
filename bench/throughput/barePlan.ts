/**
 * The bare pipeline's plan (bareNode.ts): how many of each piece of infrastructure work one
 * task does, as measured for an order-router task in Clawfleet, and how its Postgres commits
 * are spread over its calls to the store.
 */
export interface BarePlan {
  /** Calls to the gateway per task (Clawfleet: rate-gateway.complete). */
  modelTurns: number;
  /** Calls to the executor per task, each calling the tool service (Clawfleet: executor.run). */
  toolCalls: number;
  /** Calls to the store the planner makes per task (Clawfleet: checkpoint.* but createTask). */
  storeCalls: number;
  /** Postgres commits per task, the intake's insert included. */
  commits: number;
  /** Events emitted per task. */
  events: number;
}

/** Why `plan` cannot be run, or undefined: every task needs its insert and its end. */
export function planProblem(plan: BarePlan): string | undefined {
  const counts = [plan.modelTurns, plan.toolCalls, plan.storeCalls, plan.commits, plan.events];
  if (!counts.every((n) => Number.isInteger(n) && n >= 0)) return `every count must be a whole number: ${JSON.stringify(plan)}`;
  if (plan.commits < 2 || plan.storeCalls < 1) return `a task needs commits >= 2 (its insert and its end) and storeCalls >= 1: ${JSON.stringify(plan)}`;
  return undefined;
}

/**
 * The store's statements for each of a task's `storeCalls`, in order: the commits left after the
 * intake's insert, spread evenly, the remainder on the last calls. The last call always has one,
 * which ends the task: when there are fewer of them than calls (`commits - 1 < storeCalls`), the
 * first calls have none.
 */
export function statementsPerCall(plan: BarePlan): number[] {
  const rest = plan.commits - 1;
  return Array.from({ length: plan.storeCalls }, (_, i) => Math.floor(rest / plan.storeCalls) + (plan.storeCalls - 1 - i < rest % plan.storeCalls ? 1 : 0));
}

/** How the bare pipeline's gateway calls the simulated provider, when it does: node:http alone, or the official SDK (bareNode.ts). */
export type ProviderClient = "http" | "sdk";
