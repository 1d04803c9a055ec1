/**
 * observability - the pieces that need no cluster: the canonical input hash, the
 * W3C traceparent helpers, and duplicate tool call detection in the agent loop
 * (reported once per repeat, never again when the task resumes from checkpoints).
 */
import { randomUUID } from "node:crypto";
import { ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseAgentFile } from "../../src/agent/definition";
import { runLoop, type LoopDeps } from "../../src/agent/runLoop";
import { ToolCallLedger } from "../../src/agent/toolCallLedger";
import type { MessageParam } from "../../src/contracts";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse } from "../../src/llm/scriptedModel";
import { openStore, type OpenedStore } from "../../src/store/pgTaskStore";
import { canonicalJson, inputHash } from "../../src/telemetry/inputHash";
import { Metrics } from "../../src/telemetry/metrics";
import { contextFromTraceparent, traceparentOf } from "../../src/telemetry/spans";
import { ToolRegistry } from "../../src/tools/registry";

describe("observability - tool input hash", () => {
  it("is the same for the same input whatever the key order, and differs for another input", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
    expect(inputHash({ order_id: "ORD-1", items: [{ sku: "A", quantity: 1 }] })).toBe(inputHash({ items: [{ quantity: 1, sku: "A" }], order_id: "ORD-1" }));
    expect(inputHash({ order_id: "ORD-1" })).not.toBe(inputHash({ order_id: "ORD-2" }));
    expect(inputHash({ order_id: "ORD-1" })).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("observability - traceparent", () => {
  it("round-trips a span context and ignores malformed or invalid ones", () => {
    const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const ctx = contextFromTraceparent(tp);
    expect(trace.getSpanContext(ctx)).toMatchObject({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: 1, isRemote: true });
    expect(traceparentOf(ctx)).toBe(tp);
    for (const bad of [undefined, "", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]) {
      expect(contextFromTraceparent(bad)).toBe(ROOT_CONTEXT);
    }
    expect(traceparentOf(ROOT_CONTEXT)).toBeUndefined();
  });
});

describe("observability - duplicate tool calls", () => {
  let opened: OpenedStore;
  beforeAll(async () => {
    opened = await openStore({ dataDir: "memory://" });
  });
  afterAll(async () => {
    await opened.close();
  });

  const agent = parseAgentFile(
    ["---", "name: dup-agent", "tools: [lookup_order]", "tiers:", "  reason:", "    model: claude-haiku-5-5", "    max_tokens: 512", "default_tier: reason", "result: text", "---", "Look it up.", ""].join("\n"),
    "inline:dup-agent.md",
  );
  const registry = new ToolRegistry().register({
    name: "lookup_order",
    description: "test lookup",
    sideEffect: false,
    input: z.object({ order_id: z.string() }),
    run: async (i) => ({ order_id: i.order_id, region: "eu-central" }),
  });
  // The same lookup three times (key order varies: the hash is canonical), then an answer.
  const assistantTurns = (messages: readonly MessageParam[]) => messages.filter((m) => m.role === "assistant").length;
  const model = new ScriptedModel((req) => {
    const n = assistantTurns(req.messages);
    if (n === 0) return { content: [text("Looking it up."), toolUse("tu_1", "lookup_order", { order_id: "ORD-1005" })] };
    if (n < 3) return { content: [text("Once more, to be sure."), toolUse(`tu_${n + 1}`, "lookup_order", { order_id: "ORD-1005" })] };
    return { content: [text("Done.")] };
  });

  it("counts each repeat once with both steps, and a resumed task does not count replayed calls again", async () => {
    const store = opened.store;
    const metrics = new Metrics({ node: "test" });
    const warnings: Array<Record<string, unknown>> = [];
    const id = randomUUID();
    await store.createTask({ id, agent: agent.name, input: "route ORD-1005", priority: "normal", metadata: {}, prompt_version: agent.promptVersion });
    const controller = new AbortController();
    const deps: LoopDeps = {
      store,
      llm: model,
      tools: registry,
      toolSpecs: async (a) => registry.specs(a.tools),
      prices: new PriceTable(),
      logger: { info: () => undefined, warn: (obj) => warnings.push(obj) },
      metrics,
      // Attempt 1 stops right after the first repeat (step 4) is checkpointed, as a crash there would.
      onStep: (e) => {
        if (e.step === 4) controller.abort(new Error("planner gone"));
      },
    };
    const duplicates = async () => (await metrics.registry.getSingleMetricAsString("clawfleet_duplicate_tool_calls_total")).split("\n").filter((l) => !l.startsWith("#"));

    const first = await store.claimTask(id, "planner-a");
    if (!first) throw new Error("claim failed");
    expect((await runLoop(deps, { ...first, agent, defaultMaxSteps: 20, signal: controller.signal })).kind).toBe("interrupted");
    expect(warnings).toEqual([expect.objectContaining({ event: "tool.duplicate_call", taskId: id, tool: "lookup_order", step: 4, first_step: 2, input_hash: inputHash({ order_id: "ORD-1005" }) })]);
    expect(await duplicates()).toEqual([`clawfleet_duplicate_tool_calls_total{agent="dup-agent",prompt_version="${agent.promptVersion}",tool="lookup_order",node="test"} 1`]);

    // Attempt 2 (another planner) replays steps 1-4 silently; only the new repeat at step 6 counts.
    const second = await store.claimTask(id, "planner-b");
    if (!second) throw new Error("claim failed");
    const progress = { steps: 0, toolCalls: 0 };
    const outcome = await runLoop({ ...deps, onStep: () => undefined }, { ...second, agent, defaultMaxSteps: 20, signal: new AbortController().signal, progress });
    expect(outcome.kind).toBe("succeeded");
    expect(warnings.map((w) => [w.step, w.first_step])).toEqual([
      [4, 2],
      [6, 2],
    ]);
    expect(await duplicates()).toEqual([`clawfleet_duplicate_tool_calls_total{agent="dup-agent",prompt_version="${agent.promptVersion}",tool="lookup_order",node="test"} 2`]);
    // Progress counts every checkpoint of the task, the replayed ones included.
    expect(progress).toEqual({ steps: 7, toolCalls: 3 });
  });

  it("rebuilds the ledger from checkpoints without reporting what they hold", () => {
    const at = (step: number, input: unknown) => ({
      task_id: "t",
      step,
      kind: "tool" as const,
      schema_version: 1,
      fence: 1,
      created_at: "",
      data: { tool: "lookup_order", tool_use_id: `tu_${step}`, input, output: {}, ok: true, duration_ms: 1, idempotency_key: `t:${step}` },
    });
    const ledger = ToolCallLedger.fromCheckpoints([at(4, { order_id: "A" }), at(2, { order_id: "A" })]);
    expect(ledger.count).toBe(2);
    expect(ledger.enter("lookup_order", { order_id: "B" }, 6)).toBeUndefined();
    expect(ledger.enter("lookup_order", { order_id: "A" }, 8)).toMatchObject({ firstStep: 2 });
    expect(ledger.enter("list_warehouses", { order_id: "A" }, 9)).toBeUndefined();
  });
});
