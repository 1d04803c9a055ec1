/**
 * Checkpoint format versioning: stored checkpoints of every released format
 * version must keep replaying into the conversation they were written from.
 * `test/fixtures/checkpoints/order-router.v1.json` is a version-1 log, as the
 * store lists it, with the conversation a version-1 build replays it into.
 * Never edit a released fixture; a new format version gets a new one.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CheckpointFormatError, replay, upgradeStep } from "../../src/agent/replay";
import { CheckpointTooNewError } from "../../src/errors";
import { CHECKPOINT_SCHEMA_VERSION, type StepRecord } from "../../src/contracts";
import type { MessageParam } from "../../src/contracts";

interface CheckpointFixture {
  schema_version: number;
  task: { id: string; agent: string; input: unknown };
  steps: StepRecord[];
  expected: { next_step: number; messages: MessageParam[] };
}

function loadFixture(name: string): CheckpointFixture {
  const file = path.join(__dirname, "../fixtures/checkpoints", name);
  return JSON.parse(fs.readFileSync(file, "utf8")) as CheckpointFixture;
}

const v1 = (): CheckpointFixture => loadFixture("order-router.v1.json");

function stepNo(steps: readonly StepRecord[], n: number): StepRecord {
  const s = steps.find((x) => x.step === n);
  if (!s) throw new Error(`fixture has no step ${n}`);
  return s;
}

function inputOf(steps: readonly StepRecord[], n: number): unknown {
  const s = stepNo(steps, n);
  if (s.kind !== "tool") throw new Error(`fixture step ${n} is not a tool step`);
  return s.data.input;
}

describe("replay - checkpoint format version 1", () => {
  it("replays the order-router fixture into the conversation it was written from", () => {
    const fx = v1();
    expect(fx.schema_version).toBe(1);
    expect(fx.steps.every((s) => s.schema_version === 1)).toBe(true);

    const state = replay(fx.task.input, fx.steps);

    expect(state.messages).toEqual(fx.expected.messages);
    expect(state.nextStep).toBe(14);
    expect(state.pending).toEqual([]);
    expect(state.llmSteps).toBe(6);
    expect(state.toolSteps).toBe(7);
    const last = stepNo(fx.steps, 13);
    expect(state.lastLlm).toEqual({ content: last.kind === "llm" ? last.data.content : null, stop_reason: "end_turn" });
  });

  it("spells the replayed messages out the way the Messages API takes them", () => {
    const { messages } = replay(v1().task.input, v1().steps);

    expect(messages[0]).toEqual({ role: "user", content: '{"order_id":"ORD-1005"}' });
    expect(messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant"]);
    // The rejected first lookup comes back as an error the model can read.
    expect(messages[2]).toEqual({
      role: "user",
      content: [
        {
          type: "tool_result",
          tool_use_id: "toolu_01XkV7aQ3mJ9pR2sT5uW8yZb",
          content: '{"error":"invalid input","issues":[{"path":"order_id","message":"an order id looks like ORD-1042"}]}',
          is_error: true,
        },
      ],
    });
    // The parallel inventory turn: one user message, results in call order.
    const inventory = messages[8];
    expect(inventory?.role === "user" && typeof inventory.content !== "string" && inventory.content.map((b) => (b.type === "tool_result" ? b.tool_use_id : ""))).toEqual([
      "toolu_01Jq5zX2cV7bN4mL8kH3gF6d",
      "toolu_01Pw9eR4tY1uO6iA3sD8fG5h",
      "toolu_01Lz3xC6vB9nM2qW5eR8tY1u",
    ]);
  });

  it("does not depend on the order the steps are listed in", () => {
    const fx = v1();
    expect(replay(fx.task.input, [...fx.steps].reverse()).messages).toEqual(fx.expected.messages);
  });

  it("owes exactly the missing calls of a parallel turn cut short after some results were checkpointed", () => {
    const fx = v1();
    // Written up to the inventory turn, of whose three calls only WH-MUC's (step 9) was checkpointed.
    const partial = fx.steps.filter((s) => s.step <= 7 || s.step === 9);

    const state = replay(fx.task.input, partial);

    expect(state.pending).toEqual([
      { step: 8, id: "toolu_01Jq5zX2cV7bN4mL8kH3gF6d", name: "check_inventory", input: inputOf(fx.steps, 8) },
      { step: 10, id: "toolu_01Lz3xC6vB9nM2qW5eR8tY1u", name: "check_inventory", input: inputOf(fx.steps, 10) },
    ]);
    expect([...state.doneResults.keys()]).toEqual([9]);
    expect(state.doneResults.get(9)).toEqual({
      type: "tool_result",
      tool_use_id: "toolu_01Pw9eR4tY1uO6iA3sD8fG5h",
      content: '{"warehouse_id":"WH-MUC","can_fill":true,"shortfall":[]}',
    });
    expect(state.nextStep).toBe(11);
    expect(state.lastLlm).toBeNull();
    // The conversation stops at the assistant turn whose results are owed.
    expect(state.messages).toEqual(fx.expected.messages.slice(0, 8));
  });

  it("starts a task with no checkpoints from its input alone", () => {
    expect(replay("route ORD-1005", [])).toEqual({
      messages: [{ role: "user", content: "route ORD-1005" }],
      nextStep: 1,
      pending: [],
      doneResults: new Map(),
      lastLlm: null,
      llmSteps: 0,
      toolSteps: 0,
    });
  });
});

describe("replay - refusing checkpoints it cannot trust", () => {
  it("refuses a step written in a newer format version than this build understands", () => {
    const fx = v1();
    const newer = { ...stepNo(fx.steps, 6), schema_version: CHECKPOINT_SCHEMA_VERSION + 1 };
    const steps = fx.steps.map((s) => (s.step === 6 ? newer : s));

    expect(() => replay(fx.task.input, steps)).toThrow(CheckpointTooNewError);
    expect(() => replay(fx.task.input, steps)).toThrow(
      `checkpoint ${fx.task.id}#6 has format version ${CHECKPOINT_SCHEMA_VERSION + 1}, newer than this build understands (${CHECKPOINT_SCHEMA_VERSION}); run a newer Clawfleet`,
    );
    expect(() => upgradeStep(newer)).toThrow(CheckpointTooNewError);
    expect(upgradeStep(stepNo(fx.steps, 6))).toEqual(stepNo(fx.steps, 6));
  });

  it("refuses a gap where an LLM step is missing", () => {
    const fx = v1();
    const steps = fx.steps.filter((s) => s.step !== 5);
    expect(() => replay(fx.task.input, steps)).toThrow(new CheckpointFormatError("checkpoint gap: step 5 missing before step 13"));
  });

  it("refuses a missing tool result when later steps exist", () => {
    const fx = v1();
    const steps = fx.steps.filter((s) => s.step !== 4);
    expect(() => replay(fx.task.input, steps)).toThrow(new CheckpointFormatError("tool results owed before step 5"));
  });

  it("refuses a tool result that answers a different tool call", () => {
    const fx = v1();
    const steps = fx.steps.map((s) => (s.step === 9 && s.kind === "tool" ? { ...s, data: { ...s.data, tool_use_id: "toolu_someone_else" } } : s));
    expect(() => replay(fx.task.input, steps)).toThrow(new CheckpointFormatError("step 9 should be the result of tool call toolu_01Pw9eR4tY1uO6iA3sD8fG5h"));
  });

  it("refuses a tool step where an LLM step belongs", () => {
    const fx = v1();
    // Drop the whole first turn and renumber: step 1 is now a tool result.
    const steps = fx.steps.filter((s) => s.step > 1).map((s) => ({ ...s, step: s.step - 1 }));
    expect(() => replay(fx.task.input, steps)).toThrow(new CheckpointFormatError("step 1 should be an LLM step, found a tool step"));
  });
});
