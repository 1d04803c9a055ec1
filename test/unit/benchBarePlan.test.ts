/**
 * The throughput benchmark's peer must do what it claims for any plan measured off Clawfleet:
 * exactly the plan's commits, and every task ended by its last store call. With fewer commits
 * after the insert than store calls (Clawfleet's commits per task fell to about its store calls),
 * an even spread with the remainder first left the last call with nothing to do: no task ever
 * ended, and the benchmark waited out its deadline.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { planProblem, statementsPerCall, type BarePlan } from "../../bench/throughput/barePlan";

const plans = fc.record({
  modelTurns: fc.integer({ min: 0, max: 20 }),
  toolCalls: fc.integer({ min: 0, max: 20 }),
  storeCalls: fc.integer({ min: 1, max: 40 }),
  commits: fc.integer({ min: 2, max: 80 }),
  events: fc.integer({ min: 0, max: 40 }),
});

describe("the bare pipeline's plan", () => {
  it("spreads the commits after the insert over the store calls, and the last call always ends the task", () => {
    fc.assert(
      fc.property(plans, (plan: BarePlan) => {
        expect(planProblem(plan)).toBeUndefined();
        const per = statementsPerCall(plan);
        expect(per).toHaveLength(plan.storeCalls);
        expect(per.reduce((s, n) => s + n, 0)).toBe(plan.commits - 1);
        expect(per.at(-1)).toBeGreaterThanOrEqual(1);
        expect(Math.max(...per) - Math.min(...per)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it("the order-router plan that stalled: 12 commits over 13 store calls", () => {
    const plan = { modelTurns: 6, toolCalls: 6, storeCalls: 13, commits: 12, events: 15 };
    expect(statementsPerCall(plan)).toEqual([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
  });

  it("refuses a plan no task could finish, or one with counts that are not whole numbers", () => {
    expect(planProblem({ modelTurns: 6, toolCalls: 6, storeCalls: 13, commits: 1, events: 15 })).toMatch(/commits >= 2/);
    expect(planProblem({ modelTurns: 6, toolCalls: 6, storeCalls: 0, commits: 12, events: 15 })).toMatch(/storeCalls >= 1/);
    expect(planProblem({ modelTurns: 6, toolCalls: 6, storeCalls: 13, commits: 10.6, events: 15 })).toMatch(/whole number/);
    expect(planProblem(JSON.parse("{}") as BarePlan)).toMatch(/whole number/);
  });
});
