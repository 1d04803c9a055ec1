/**
 * Model-response fuzz: agent tasks run on an embedded node whose rate gateway
 * calls the simulated model over HTTP with the official SDK; the sim answers each
 * task from a script fast-check generated (modelArbitraries.ts): malformed tool
 * calls, unknown and forbidden tools, missing ids, empty and huge answers, broken
 * JSON for a `result: json` agent, odd stop reasons. Properties: every task ends,
 * within a bound, succeeded or failed with a typed error; no impossible state; the
 * steps are numbered without gaps and each tool step answers a call of the turn
 * before it; no tool runs with input its schema refuses, and no forbidden tool runs.
 *
 * Fixed seed and size here; CLAWFLEET_FUZZ_RUNS / CLAWFLEET_FUZZ_SEED for longer runs (README, "Tests").
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { genScript } from "./modelArbitraries";
import { observed, stepProblems, useModelRig } from "./modelRig";
import { fuzzSettings } from "./settings";
import { impossibilities } from "./taskStates";

describe("model-response fuzz (official SDK against the simulated model)", () => {
  const rig = useModelRig();

  it("ends every task within the bound, succeeded or failed with a typed error, in a possible state", async () => {
    const { numRuns, ...settings } = fuzzSettings("model", 80, 20_250_602);
    const started = Date.now();
    const outcomes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(genScript, fc.constantFrom("fz-text" as const, "fz-json" as const), async (script, agent) => {
        const { task, steps } = await rig().run(agent, script);
        const kind = task.status === "failed" ? `failed:${task.error?.type}` : "succeeded";
        outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
        expect(impossibilities(task)).toEqual([]);
        if (task.status === "failed") expect(task.error?.type, task.error?.message).not.toBe("internal_error");
        expect(stepProblems(task.status, steps)).toEqual([]);
        expect(observed.refusedInputs).toEqual([]);
        expect(observed.forbiddenCalls).toBe(0);
      }),
      { ...settings, numRuns, interruptAfterTimeLimit: 30 * 60_000 },
    );
    process.stdout.write(
      `fuzz model: ${numRuns} tasks in ${Date.now() - started} ms; outcomes ${JSON.stringify(Object.fromEntries(outcomes))}; tool calls lookup ${observed.lookup}, record ${observed.record}\n`,
    );
  }, 35 * 60_000);
});
