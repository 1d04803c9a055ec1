/**
 * The model-response fuzz suite's findings, each as the smallest script that showed it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimServer, type PolicyRoute, type SimServer, type SimTurn } from "../../src/sim";
import { useModelRig } from "./modelRig";

describe("the simulated model plays a policy's turn as it is", () => {
  let sim: SimServer;
  let answer: SimTurn;
  const route: PolicyRoute = { name: "as-given", matches: () => true, policy: () => answer };

  beforeAll(async () => {
    sim = await startSimServer({ port: 0, policies: [route] });
  });

  afterAll(async () => {
    await sim?.close();
  });

  // A policy is user code (CLAWFLEET_SIM_POLICIES, often plain JavaScript): a block missing a field
  // used to crash the sim's token estimate into a bare 500 "Internal server error".
  it.each([
    ["a tool_use without input", { type: "tool_use", id: "toolu_1", name: "lookup" }],
    ["a tool_use without a name", { type: "tool_use", id: "toolu_1", input: {} }],
    ["a text block without text", { type: "text" }],
  ])("answers %s with 200 and the block as the policy gave it", async (_what, block) => {
    answer = { content: [block], stop_reason: "tool_use" } as unknown as SimTurn;
    const r = await fetch(`${sim.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "claude-haiku-4-5", max_tokens: 100, messages: [{ role: "user", content: "hi" }] }),
    });
    const body = (await r.json()) as { content?: unknown[]; error?: unknown };
    expect(r.status, JSON.stringify(body)).toBe(200);
    expect(body.content).toEqual([block]);
  });
});

describe("a model answer holding what jsonb cannot store", () => {
  const rig = useModelRig();

  // A NUL or a lone surrogate in a model's text or tool input used to fail the checkpoint write
  // (SQLSTATE 22P02) and the task as internal_error; each is now stored as U+FFFD and the task goes on.
  it.each([
    ["a NUL in text", "a\u0000b", "a\ufffdb"],
    ["a lone surrogate in text", "x\ud800y", "x\ufffdy"],
  ])("keeps %s as U+FFFD and the task succeeds", async (_what, text, stored) => {
    const { task, steps } = await rig().run("fz-text", [{ content: [{ type: "text", text }], stop_reason: "end_turn" }]);
    expect(task.status, JSON.stringify(task.error)).toBe("succeeded");
    expect(JSON.stringify(steps)).toContain(JSON.stringify(stored).slice(1, -1));
  });

  // A tool_use block without an id used to fail as validation_error "checkpoint.appendStep: field
  // step.data.content.0: Invalid input", blaming an internal contract for the model's answer.
  it("fails a task whose model answers a tool_use block without an id as model_behavior_error naming the block", async () => {
    const { task } = await rig().run("fz-text", [{ content: [{ type: "tool_use", name: "lookup", id: "missing", input: { id: "x" }, omitInput: false }], stop_reason: "tool_use" }]);
    expect(task.status).toBe("failed");
    expect(task.error?.type).toBe("model_behavior_error");
    expect(task.error?.message).toMatch(/malformed tool_use block: content\[0\]\.id/);
  });

  it("keeps a NUL inside a tool call's input as U+FFFD, and the call is made", async () => {
    const { task, steps } = await rig().run("fz-text", [
      { content: [{ type: "tool_use", name: "lookup", id: "fresh", input: { id: "a\u0000b" }, omitInput: false }], stop_reason: "tool_use" },
      { content: [{ type: "text", text: "done" }], stop_reason: "end_turn" },
    ]);
    expect(task.status, JSON.stringify(task.error)).toBe("succeeded");
    expect(steps.map((s) => s.kind)).toEqual(["llm", "tool", "llm"]);
  });
});
