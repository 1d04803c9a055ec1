/**
 * Which budgets a task runs under. The agent file's `budgets:` are the defaults
 * and the ceiling; a submit may lower any of them (never raise one the agent
 * sets) and pick `on_exhausted`. The result is stored with the task at submit,
 * so a later change to the agent file does not move a task's budgets mid-run.
 */
import { BUDGET_NAMES, type TaskBudgets, type TaskRecord } from "../contracts";
import { ValidationError } from "../errors";

/** The agent's budgets as far as a task is concerned (`max_daily_cost_usd` is the agent's alone). */
export interface AgentBudgets {
  budgets: TaskBudgets;
}

/**
 * The task's effective budgets: the agent's, each lowered by the submit's where it names one. A value over the
 * agent's is a ValidationError naming the field (`budgets.<name>`). `on_exhausted` always set.
 */
export function effectiveBudgets(agent: AgentBudgets & { name: string }, asked: TaskBudgets | undefined): TaskBudgets {
  const out: TaskBudgets = { ...agent.budgets, on_exhausted: asked?.on_exhausted ?? agent.budgets.on_exhausted ?? "fail" };
  for (const name of BUDGET_NAMES) {
    const want = asked?.[name];
    if (want === undefined) continue;
    const ceiling = agent.budgets[name];
    if (ceiling !== undefined && want > ceiling) {
      throw new ValidationError(`invalid task: field "budgets.${name}": ${want} is over agent ${agent.name}'s ${name} of ${ceiling}`, {
        field: `budgets.${name}`,
        max: ceiling,
      });
    }
    out[name] = want;
  }
  return out;
}

/** What the loop runs a task under: the budgets stored with it, or, for a task stored without any, its agent's. */
export function budgetsOf(task: Pick<TaskRecord, "budgets">, agent: AgentBudgets): TaskBudgets {
  return task.budgets ?? agent.budgets;
}
