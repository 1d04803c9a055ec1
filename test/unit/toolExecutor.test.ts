/**
 * The executor's one way to run a tool call (src/tools/executor.ts), with tool
 * sources of its own making and the real side-effect ledger (PGlite in memory):
 * the allow-list enforced again, unknown tools and bad input refused before any
 * call, timeouts, and side effects kept to one call per idempotency key.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import { emptyUsage, type ToolCall } from "../../src/contracts";
import { CallCancelledError, isRetryable, restoreError, ToolOutcomeUnknownError, UnavailableError } from "../../src/errors";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { ToolExecutor } from "../../src/tools/executor";
import { ToolRegistry } from "../../src/tools/registry";
import { splitDescribedSpecs, type ResolvedTool, type ToolSource } from "../../src/tools/source";
import { LocalToolSource } from "../../src/tools/sources/local";
import type { ToolContext } from "../../src/tools/tool";
import { useMemoryStore } from "../helpers/memoryStore";

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

const agent = (name: string, tools: string[], extra: string[] = []) =>
  parseAgentFile(
    ["---", `name: ${name}`, `tools: [${tools.join(", ")}]`, ...extra, "tiers:", "  t:", "    model: m", "    max_tokens: 100", "default_tier: t", "---", "Test agent.", ""].join("\n"),
    `inline:${name}.md`,
  );
const AGENTS = new AgentCatalog([agent("payments", ["charge", "lookup", "slow_lookup", "refine"]), agent("mcp-user", ["crm__*"], ["mcp_servers:", "  crm:", "    url: http://127.0.0.1:9/mcp"]), agent("narrow", ["lookup"])]);

/** A source whose tools record every call that reached them. */
class FakeSource implements ToolSource {
  readonly kind = "service" as const;
  readonly calls: Array<{ tool: string; input: unknown; key: string }> = [];
  private readonly tools = new Map<string, ResolvedTool>();

  add(name: string, run: (input: unknown, ctx: ToolContext) => Promise<unknown>, over: Partial<ResolvedTool> = {}): this {
    this.tools.set(name, {
      name,
      description: `the ${name} tool`,
      inputSchema: { type: "object", properties: { amount: { type: "integer", minimum: 1 }, currency: { enum: ["EUR", "USD"] } }, required: ["amount"] },
      sideEffect: false,
      target: `svc.${name}`,
      invoke: async (input, ctx) => {
        this.calls.push({ tool: name, input, key: ctx.idempotencyKey });
        return run(input, ctx);
      },
      ...over,
    });
    return this;
  }

  async resolve(_a: unknown, name: string) {
    return this.tools.get(name);
  }

  async list() {
    return [...this.tools.values()];
  }
}

function executor(sources: ToolSource[], maxUnknownOutcomes = 3): { exec: ToolExecutor; warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = [];
  const exec = new ToolExecutor({ sources, agents: AGENTS, ledger: store, maxUnknownOutcomes, logger: { warn: (o) => warnings.push(o) } });
  return { exec, warnings };
}

function call(tool: string, input: unknown, over: Partial<ToolCall> = {}): ToolCall {
  const taskId = over.taskId ?? randomUUID();
  const step = over.step ?? 2;
  return { taskId, agent: "payments", step, tool, toolUseId: `tu_${step}`, input, idempotencyKey: `${taskId}:${step}`, ...over };
}

const never = () => new Promise<never>(() => undefined);

describe("tool executor - what is never run", () => {
  it("executor - a tool the agent does not list is not run, though a source holds it", async () => {
    const source = new FakeSource().add("charge", async () => ({ charged: true }));
    const { exec } = executor([source]);
    const res = await exec.run(call("charge", { amount: 5 }, { agent: "narrow" }));
    expect(res).toMatchObject({ ok: false, output: { error: 'tool "charge" is not available to agent narrow' } });
    expect(source.calls).toEqual([]);
  });

  it("executor - an agent this executor does not know runs nothing", async () => {
    const source = new FakeSource().add("lookup", async () => ({}));
    const res = await executor([source]).exec.run(call("lookup", { amount: 1 }, { agent: "ghost" }));
    expect(res).toMatchObject({ ok: false, output: { error: expect.stringContaining("agent ghost is unknown to this executor") } });
    expect(source.calls).toEqual([]);
  });

  it("executor - a listed tool no source holds is an ok:false result naming it", async () => {
    const res = await executor([new FakeSource()]).exec.run(call("lookup", { amount: 1 }));
    expect(res).toMatchObject({ ok: false, output: { error: expect.stringMatching(/^unknown tool "lookup": no tool source holds it/) } });
  });

  it("executor - input failing the tool's JSON Schema lists each field, and the tool is not run", async () => {
    const source = new FakeSource().add("charge", async () => ({}), { sideEffect: true });
    const c = call("charge", { amount: 0, currency: "GBP" });
    const res = await executor([source]).exec.run(c);
    expect(res.ok).toBe(false);
    expect(res.output).toEqual({
      error: "invalid input",
      issues: [
        { path: "amount", message: "must be >= 1" },
        { path: "currency", message: 'must be one of "EUR", "USD"' },
      ],
    });
    expect((await executor([source]).exec.run(call("charge", {}))).output).toMatchObject({ issues: [{ path: "amount", message: "is required" }] });
    expect(source.calls).toEqual([]);
    // Refused before the ledger: the model may fix its input at a new step.
    expect((await store.toolCallStarted(c.idempotencyKey, c.taskId, c.step, "charge")).starts).toBe(1);
  });

  it("executor - a local tool's zod refinement is checked after the JSON Schema, before any call", async () => {
    let ran = 0;
    const registry = new ToolRegistry().register({
      name: "refine",
      description: "d",
      sideEffect: true,
      input: z.object({ from: z.number(), to: z.number() }).refine((v) => v.to > v.from, { message: "to must follow from", path: ["to"] }),
      run: async () => ++ran,
    });
    const { exec } = executor([new LocalToolSource(registry)]);
    expect((await exec.run(call("refine", { from: 5, to: 1 }))).output).toEqual({ error: "invalid input", issues: [{ path: "to", message: "to must follow from" }] });
    expect(await exec.run(call("refine", { from: 1, to: 5 }))).toMatchObject({ ok: true, output: 1 });
    expect(ran).toBe(1);
  });
});

describe("tool executor - sources and specs", () => {
  it("executor - the first source that holds a name serves it; specs follow the agent's list and leave out what no source holds", async () => {
    const first = new FakeSource().add("lookup", async () => "first");
    const second = new FakeSource().add("lookup", async () => "second").add("charge", async () => "charged");
    const { exec, warnings } = executor([first, second]);
    expect(await exec.run(call("lookup", { amount: 1 }))).toMatchObject({ ok: true, output: "first" });
    const specs = await exec.specs("payments", ["charge", "lookup", "slow_lookup", "not_allowed"]);
    expect(specs.map((s) => s.name)).toEqual(["charge", "lookup"]);
    expect(specs[0]).toEqual({ name: "charge", description: "the charge tool", input_schema: expect.objectContaining({ type: "object" }) });
    expect(warnings).toContainEqual(expect.objectContaining({ event: "tools.missing", tools: ["slow_lookup"] }));
  });

  it("executor - `<server>__*` allows every tool of that server, and its specs list them", async () => {
    const mcp = new FakeSource().add("crm__find", async () => "found").add("crm__delete", async () => "gone").add("erp__post", async () => "posted");
    const { exec } = executor([mcp]);
    expect((await exec.specs("mcp-user", ["crm__*"])).map((s) => s.name)).toEqual(["crm__find", "crm__delete"]);
    expect(await exec.run(call("crm__find", { amount: 1 }, { agent: "mcp-user" }))).toMatchObject({ ok: true, output: "found" });
    expect(await exec.run(call("erp__post", { amount: 1 }, { agent: "mcp-user" }))).toMatchObject({ ok: false });
    expect(mcp.calls.map((c) => c.tool)).toEqual(["crm__find"]);
  });
});

describe("tool executor - timeouts and failures of tools without side effects", () => {
  it("executor - past its timeout a tool is aborted and the model reads ok:false", async () => {
    let signal: AbortSignal | undefined;
    const source = new FakeSource().add(
      "slow_lookup",
      async (_i, ctx) => {
        signal = ctx.signal;
        return never();
      },
      { timeoutMs: 50 },
    );
    const started = Date.now();
    const res = await executor([source]).exec.run(call("slow_lookup", { amount: 1 }));
    expect(res).toMatchObject({ ok: false, output: { error: "tool slow_lookup timed out after 50 ms" } });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(signal?.aborted).toBe(true);
  });

  it("executor - a tool's own error is the model's to read; an unreachable back end is thrown for the step to be retried", async () => {
    const source = new FakeSource()
      .add("lookup", async () => {
        throw new Error("no such order");
      })
      .add("slow_lookup", async () => {
        throw new UnavailableError("inventory database unavailable");
      });
    const { exec } = executor([source]);
    expect(await exec.run(call("lookup", { amount: 1 }))).toMatchObject({ ok: false, output: { error: "no such order" } });
    await expect(exec.run(call("slow_lookup", { amount: 1 }))).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe("tool executor - side effects run at most once per idempotency key", () => {
  it("ledger - an answered call is recorded, and the same key is answered from the ledger without calling again", async () => {
    let n = 0;
    const source = new FakeSource().add("charge", async () => ({ charge: ++n }), { sideEffect: true });
    const { exec } = executor([source]);
    const c = call("charge", { amount: 5 });
    expect(await exec.run(c)).toMatchObject({ ok: true, output: { charge: 1 } });
    const again = await exec.run(c);
    expect(again).toMatchObject({ ok: true, output: { charge: 1 }, replayed: true });
    expect(source.calls).toHaveLength(1);
    // A new step is a new key: called.
    expect(await exec.run(call("charge", { amount: 5 }, { taskId: c.taskId, step: 4, idempotencyKey: `${c.taskId}:4` }))).toMatchObject({ output: { charge: 2 } });
  });

  it("ledger - a side-effect tool's own error is an outcome too: recorded and answered again", async () => {
    const source = new FakeSource().add(
      "charge",
      async () => {
        throw new Error("card declined");
      },
      { sideEffect: true },
    );
    const { exec } = executor([source]);
    const c = call("charge", { amount: 5 });
    expect(await exec.run(c)).toMatchObject({ ok: false, output: { error: "card declined" } });
    expect(await exec.run(c)).toMatchObject({ ok: false, output: { error: "card declined" }, replayed: true });
    expect(source.calls).toHaveLength(1);
  });

  it("ledger - an outcome unknown (timeout) is a retryable error, and the same key asks the tool again instead of the model calling afresh", async () => {
    let answer = false;
    const source = new FakeSource().add("charge", async () => (answer ? { charged: "once" } : never()), { sideEffect: true, timeoutMs: 30 });
    const { exec, warnings } = executor([source]);
    const c = call("charge", { amount: 5 });
    const err = await exec.run(c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolOutcomeUnknownError);
    expect(isRetryable(err)).toBe(true);
    expect(warnings).toContainEqual(expect.objectContaining({ event: "tool.outcome_unknown", idempotencyKey: c.idempotencyKey, unknownOutcomes: 1, final: false }));
    answer = true;
    expect(await exec.run(c)).toMatchObject({ ok: true, output: { charged: "once" } });
    expect(source.calls.map((x) => x.key)).toEqual([c.idempotencyKey, c.idempotencyKey]);
    // Settled now: a third dispatch of the step is answered from the ledger.
    expect(await exec.run(c)).toMatchObject({ replayed: true });
    expect(source.calls).toHaveLength(2);
  });

  it("ledger - a broken way to the tool (a node lost mid-call) is an unknown outcome too", async () => {
    const lost = Object.assign(new UnavailableError("request rejected: the tool's node left"), {});
    const source = new FakeSource().add(
      "charge",
      async () => {
        throw lost;
      },
      { sideEffect: true },
    );
    await expect(executor([source]).exec.run(call("charge", { amount: 5 }))).rejects.toBeInstanceOf(ToolOutcomeUnknownError);
  });

  it("ledger - after maxUnknownOutcomes unknown outcomes for one key the error is final: the task fails, the tool is not asked again", async () => {
    const source = new FakeSource().add("charge", never, { sideEffect: true, timeoutMs: 20 });
    const { exec } = executor([source], 3);
    const c = call("charge", { amount: 5 });
    const errors: unknown[] = [];
    for (let i = 0; i < 4; i++) errors.push(await exec.run(c).catch((e: unknown) => e));
    expect(errors.map((e) => (e as ToolOutcomeUnknownError).errorType)).toEqual(["tool_outcome_unknown", "tool_outcome_unknown", "tool_outcome_unknown", "tool_outcome_unknown"]);
    expect(errors.map(isRetryable)).toEqual([true, true, false, false]);
    expect((errors[2] as Error).message).toMatch(/its outcome stayed unknown after 3 tries \(the limit is 3\); it is not called again/);
    expect(source.calls).toHaveLength(3);
  });

  it("ledger - a step asked again after its tool left is never answered 'unknown tool': it stays unknown (counted), or the recorded outcome answers", async () => {
    const source = new FakeSource().add("charge", never, { sideEffect: true, timeoutMs: 20 });
    const { exec } = executor([source], 3);
    const c = call("charge", { amount: 5 });
    await expect(exec.run(c)).rejects.toBeInstanceOf(ToolOutcomeUnknownError);
    // The tool's service is gone; the same step comes back.
    const gone = executor([new FakeSource()], 3).exec;
    const errors = [await gone.run(c).catch((e: unknown) => e), await gone.run(c).catch((e: unknown) => e)];
    expect(errors.map(isRetryable)).toEqual([true, false]);
    expect((errors[1] as Error).message).toMatch(/unknown after 3 tries/);
    // A new step of the same gone tool is an ordinary unknown tool, for the model to read.
    expect(await gone.run(call("charge", { amount: 5 }))).toMatchObject({ ok: false, output: { error: expect.stringMatching(/^unknown tool/) } });
    // A step whose outcome was recorded is answered from the ledger, tool or no tool.
    const answered = new FakeSource().add("charge", async () => ({ charged: 5 }), { sideEffect: true });
    const d = call("charge", { amount: 5 });
    await executor([answered]).exec.run(d);
    expect(await gone.run({ ...d, input: { amount: "no longer valid" } })).toMatchObject({ ok: true, output: { charged: 5 }, replayed: true });
  });

  it("ledger - the final flag survives the trip over the broker (the planner's node rebuilds the error from its wire form)", () => {
    const retry = restoreError("tool_outcome_unknown", "unknown", { final: false });
    const final = restoreError("tool_outcome_unknown", "unknown", { final: true });
    expect(retry).toBeInstanceOf(ToolOutcomeUnknownError);
    expect([isRetryable(retry), isRetryable(final)]).toEqual([true, false]);
  });

  it("ledger - the first outcome recorded wins; a later one gets it back", async () => {
    const key = `${randomUUID()}:3`;
    expect(await store.toolCallStarted(key, "t", 3, "charge")).toEqual({ starts: 1, outcome: null });
    expect(await store.toolCallStarted(key, "t", 3, "charge")).toEqual({ starts: 2, outcome: null });
    expect(await store.toolCallFinished(key, { ok: true, output: { n: 1 } })).toEqual({ ok: true, output: { n: 1 } });
    expect(await store.toolCallFinished(key, { ok: true, output: { n: 2 } })).toEqual({ ok: true, output: { n: 1 } });
    // A recorded outcome stops the count.
    expect(await store.toolCallStarted(key, "t", 3, "charge")).toEqual({ starts: 2, outcome: { ok: true, output: { n: 1 } } });
  });
});

describe("tool executor - calls premarked with their model turn's checkpoint", () => {
  /** The real ledger, with a count of the commits the executor asks of it. */
  function countingLedger() {
    const n = { started: 0, finished: 0 };
    const ledger = {
      toolCallStarted: (...args: Parameters<PgTaskStore["toolCallStarted"]>) => (n.started++, store.toolCallStarted(...args)),
      toolCallFinished: (...args: Parameters<PgTaskStore["toolCallFinished"]>) => (n.finished++, store.toolCallFinished(...args)),
      getToolCall: (key: string) => store.getToolCall(key),
    };
    return { n, ledger };
  }
  const premarkedExecutor = (sources: ToolSource[]) => {
    const { n, ledger } = countingLedger();
    return { n, exec: new ToolExecutor({ sources, agents: AGENTS, ledger, maxUnknownOutcomes: 3, logger: { warn: () => undefined } }) };
  };

  /** A running task whose model turn (step 1) was checkpointed with the ledger row of its call at step 2. */
  async function checkpointedWithMark(tool: string): Promise<{ taskId: string; key: string }> {
    const taskId = randomUUID();
    await store.createTask({ id: taskId, agent: "payments", input: "pay", priority: "normal", metadata: {}, prompt_version: "pv" });
    const claim = await store.claimTask(taskId, "planner-a");
    if (!claim) throw new Error("claim failed");
    const step = { kind: "llm" as const, step: 1, data: { model: "m", tier: "t", stop_reason: "tool_use", usage: emptyUsage(), content: [], duration_ms: 1 } };
    await store.appendStep(taskId, claim.fence, step, undefined, [{ idempotencyKey: `${taskId}:2`, step: 2, tool }]);
    return { taskId, key: `${taskId}:2` };
  }

  it("premark - a premarked side-effect call writes no start of its own, and its outcome is recorded and answers the step again", async () => {
    const source = new FakeSource().add("charge", async () => ({ charged: 5 }), { sideEffect: true });
    const { n, exec } = premarkedExecutor([source]);
    const { taskId, key } = await checkpointedWithMark("charge");
    const c = call("charge", { amount: 5 }, { taskId, premarked: true });
    expect(await exec.run(c)).toMatchObject({ ok: true, output: { charged: 5 } });
    expect(n).toEqual({ started: 0, finished: 1 });
    expect(await store.getToolCall(key)).toEqual({ starts: 1, outcome: { ok: true, output: { charged: 5 } } });
    expect(source.calls).toEqual([{ tool: "charge", input: { amount: 5 }, key }]);
    // The step dispatched again (a resumed attempt: not premarked) is answered from the ledger.
    expect(await exec.run({ ...c, premarked: undefined })).toMatchObject({ ok: true, output: { charged: 5 }, replayed: true });
    expect(source.calls).toHaveLength(1);
  });

  it("premark - a premarked call whose outcome is unknown stays unknown: the next dispatch counts a second start and asks again", async () => {
    let n = 0;
    const source = new FakeSource().add("charge", async () => (++n === 1 ? never() : { charged: n }), { sideEffect: true, timeoutMs: 20 });
    const { exec } = premarkedExecutor([source]);
    const { taskId, key } = await checkpointedWithMark("charge");
    const c = call("charge", { amount: 5 }, { taskId, premarked: true });
    const err = await exec.run(c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolOutcomeUnknownError);
    expect((err as ToolOutcomeUnknownError).data).toMatchObject({ unknownOutcomes: 1, final: false });
    expect(await store.getToolCall(key)).toEqual({ starts: 1, outcome: null });
    expect(await exec.run({ ...c, premarked: undefined })).toMatchObject({ ok: true, output: { charged: 2 } });
    expect(await store.getToolCall(key)).toEqual({ starts: 2, outcome: { ok: true, output: { charged: 2 } } });
  });

  it("premark - a premarked call the executor refuses records the refusal: the resumed step is answered it from the ledger, the tool never called", async () => {
    const { n, exec } = premarkedExecutor([new FakeSource()]);
    const { taskId, key } = await checkpointedWithMark("charge");
    const c = call("charge", { amount: 5 }, { taskId, premarked: true });
    const refused = await exec.run(c);
    expect(refused).toMatchObject({ ok: false, output: { error: expect.stringMatching(/^unknown tool "charge"/) } });
    expect(n).toEqual({ started: 0, finished: 1 });
    expect(await store.getToolCall(key)).toEqual({ starts: 1, outcome: { ok: false, output: refused.output } });
    // The tool is back by the time the step is dispatched again: the refusal answers, the tool is not called.
    const back = new FakeSource().add("charge", async () => ({ charged: 5 }), { sideEffect: true });
    expect(await premarkedExecutor([back]).exec.run({ ...c, premarked: undefined })).toMatchObject({ ok: false, output: refused.output, replayed: true });
    expect(back.calls).toEqual([]);

    // Input the tool's schema refuses: the same.
    const bad = await checkpointedWithMark("charge");
    const invalid = await premarkedExecutor([back]).exec.run(call("charge", { amount: 0 }, { taskId: bad.taskId, premarked: true }));
    expect(invalid).toMatchObject({ ok: false, output: { error: "invalid input" } });
    expect((await store.getToolCall(bad.key))?.outcome).toEqual({ ok: false, output: invalid.output });
    expect(back.calls).toEqual([]);
  });

  it("premark - a call that is not premarked starts as before, a premarked row counting as an earlier start", async () => {
    const source = new FakeSource().add("charge", async () => ({ charged: 5 }), { sideEffect: true });
    const { n, exec } = premarkedExecutor([source]);
    const { taskId, key } = await checkpointedWithMark("charge");
    expect(await exec.run(call("charge", { amount: 5 }, { taskId }))).toMatchObject({ ok: true, output: { charged: 5 } });
    expect(n).toEqual({ started: 1, finished: 1 });
    expect(await store.getToolCall(key)).toEqual({ starts: 2, outcome: { ok: true, output: { charged: 5 } } });
    // Refused without a premark, the row of a call that may have acted stays unknown: no refusal recorded.
    const other = await checkpointedWithMark("charge");
    await expect(premarkedExecutor([new FakeSource()]).exec.run(call("charge", { amount: 5 }, { taskId: other.taskId }))).rejects.toBeInstanceOf(ToolOutcomeUnknownError);
    expect(await store.getToolCall(other.key)).toEqual({ starts: 2, outcome: null });
  });

  it("unstored - a side-effect tool refuses a call whose model turn is not stored yet, retryable, recording nothing; a tool without side effects runs it", async () => {
    const source = new FakeSource().add("charge", async () => ({ charged: true }), { sideEffect: true }).add("lookup", async () => ({ found: true }));
    const { exec } = executor([source]);
    const c = call("charge", { amount: 5 }, { unstored: true });
    const err = await exec.run(c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(isRetryable(err)).toBe(true);
    expect(source.calls).toEqual([]);
    expect(await store.getToolCall(c.idempotencyKey)).toBeNull();
    // Asked again once its turn is stored: it runs, once.
    expect(await exec.run({ ...c, unstored: undefined })).toMatchObject({ ok: true, output: { charged: true } });
    expect(await exec.run(call("lookup", { amount: 1 }, { unstored: true }))).toMatchObject({ ok: true, output: { found: true } });
    expect(source.calls.map((x) => x.tool)).toEqual(["charge", "lookup"]);
  });

  it("premark - the executor describes which tools are side effects for the planner; the specs the model sees are unchanged", async () => {
    const source = new FakeSource().add("charge", async () => ({}), { sideEffect: true }).add("lookup", async () => ({}));
    const { exec } = executor([source]);
    const described = await exec.describe("payments", ["charge", "lookup"]);
    expect(described.map((s) => [s.name, s.side_effect])).toEqual([["charge", true], ["lookup", false]]);
    const specs = await exec.specs("payments", ["charge", "lookup"]);
    const split = splitDescribedSpecs(described);
    expect(JSON.stringify(split.specs)).toBe(JSON.stringify(specs));
    expect(specs.every((s) => !("side_effect" in s))).toBe(true);
    expect([...(split.sideEffects ?? [])]).toEqual(["charge"]);
    // An executor that predates the flag answers plain specs: not known, nothing is premarked.
    expect(splitDescribedSpecs(specs).sideEffects).toBeUndefined();
  });
});

/** A promise to wait on and the function that resolves it. */
function opening(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("tool executor - a caller's cancel (its planner shutting down)", () => {
  it("cancel - a tool without side effects is stopped: its signal aborts and the call rejects with the cancel's reason, no result for the model", async () => {
    let signal: AbortSignal | undefined;
    const reached = opening();
    const source = new FakeSource().add("slow_lookup", async (_i, ctx) => {
      signal = ctx.signal;
      reached.resolve();
      return never();
    });
    const cancel = new AbortController();
    const running = executor([source]).exec.run(call("slow_lookup", { amount: 1 }), cancel.signal);
    await reached.promise;
    const reason = new CallCancelledError("the caller cancelled the tool call");
    cancel.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(signal?.aborted).toBe(true);
  });

  it("cancel - a side-effect tool is never stopped midway: it runs to its outcome, which is recorded and answers the step's next call", async () => {
    let signal: AbortSignal | undefined;
    const reached = opening();
    const finish = opening();
    const source = new FakeSource().add(
      "charge",
      async (_i, ctx) => {
        signal = ctx.signal;
        reached.resolve();
        await finish.promise;
        return { charged: 5 };
      },
      { sideEffect: true },
    );
    const { exec } = executor([source]);
    const c = call("charge", { amount: 5 });
    const cancel = new AbortController();
    const running = exec.run(c, cancel.signal);
    await reached.promise;
    cancel.abort(new CallCancelledError("the caller cancelled the tool call"));
    finish.resolve();
    expect(await running).toMatchObject({ ok: true, output: { charged: 5 } });
    expect(signal?.aborted).toBe(false);
    expect(await exec.run(c)).toMatchObject({ ok: true, output: { charged: 5 }, replayed: true });
    expect(source.calls).toHaveLength(1);
  });
});
