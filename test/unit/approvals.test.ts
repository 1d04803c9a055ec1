/**
 * approvals - a gated tool call parks its task until an operator decides, with
 * the planner's task worker, a real store (PGlite in memory), a real tool
 * registry and a scripted model: the decision is recorded once, an approved
 * call runs verbatim with no new model call, a rejected one is an error result
 * for the model, and a call past its deadline is never made.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AgentCatalog, parseAgentFile, type AgentDefinition } from "../../src/agent/definition";
import { AttemptEvents } from "../../src/agent/events";
import { TaskWorker } from "../../src/agent/taskWorker";
import { ApprovalControl, needsApproval } from "../../src/approvals";
import {
  APPROVAL_DECIDED_EVENT,
  ApprovalDecidedEventSchema,
  ApprovalDecidedSchema,
  PendingApprovalsSchema,
  TASK_EVENT_SCHEMAS,
  type TaskEventName,
  type WakeUp,
} from "../../src/contracts";
import { ApprovalDecidedError, ConfigError, NotAwaitingApprovalError, TaskNotFoundError, ValidationError } from "../../src/errors";
import { MemoryLeaseManager } from "../../src/lease/memory";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse, type ScriptedTurn } from "../../src/llm/scriptedModel";
import { ReaperLoop } from "../../src/queue/reaperLoop";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { ToolRegistry } from "../../src/tools/registry";
import { useMemoryStore } from "../helpers/memoryStore";

const agentFile = (approval: string[]) =>
  [
    "---",
    "name: payments",
    "tools: [check_limit, charge_card]",
    "tiers:",
    "  main:",
    "    model: claude-haiku-5-5",
    "    max_tokens: 512",
    "default_tier: main",
    ...approval,
    "---",
    "Check the limit, charge the card once, then say what was charged.",
  ].join("\n");

const AGENT = parseAgentFile(agentFile(["approval:", "  tools: [charge_card]", "  timeout_seconds: 600"]), "inline:payments.md");
/** The same agent, with a deadline that has passed as soon as the call is asked for. */
const HASTY: AgentDefinition = { ...AGENT, name: "payments-hasty", approval: { tools: ["charge_card"], timeoutSeconds: 0 } };

const CHARGE = { order_id: "ORD-7", amount: 1250 };
/** One turn asks for both calls: the limit check needs no decision, the charge does. */
const askTurn: ScriptedTurn = { content: [text("Checking the limit and charging."), toolUse("tu_limit", "check_limit", { order_id: "ORD-7" }), toolUse("tu_charge", "charge_card", CHARGE)] };
const finalTurn: ScriptedTurn = { content: [text("Done.")] };

/** The tools, each execution recorded with its input and idempotency key. */
function tools() {
  const runs: Array<{ tool: string; input: unknown; key: string }> = [];
  const registry = new ToolRegistry()
    .register({
      name: "check_limit",
      description: "the customer's limit",
      sideEffect: false,
      input: z.object({ order_id: z.string() }),
      run: async (input, ctx) => {
        runs.push({ tool: "check_limit", input, key: ctx.idempotencyKey });
        return { limit: 5000 };
      },
    })
    .register({
      name: "charge_card",
      description: "charges the card",
      sideEffect: true,
      input: z.object({ order_id: z.string(), amount: z.number() }),
      run: async (input, ctx) => {
        runs.push({ tool: "charge_card", input, key: ctx.idempotencyKey });
        return { charge_id: `CH-${ctx.idempotencyKey}` };
      },
    });
  return { registry, runs, charges: () => runs.filter((r) => r.tool === "charge_card") };
}

let store: PgTaskStore;
useMemoryStore((s) => (store = s), { failQueuedBeforeEach: true });

const quiet = { info: () => undefined, warn: () => undefined };

/** One planner and one intake on the test's store, with every event and wake-up they send recorded. */
function cluster(model: ScriptedModel, registry: ToolRegistry, agents: AgentDefinition[] = [AGENT, HASTY]) {
  const events: Array<{ name: string; payload: unknown }> = [];
  const wakeUps: WakeUp[] = [];
  const sink = <N extends TaskEventName>(name: N, payload: unknown) => events.push({ name, payload: TASK_EVENT_SCHEMAS[name].parse(payload) });
  const attemptEvents = new AttemptEvents(sink, "planner-a");
  const worker = new TaskWorker(
    {
      store,
      leases: new MemoryLeaseManager(),
      agents: new AgentCatalog(agents),
      llm: model,
      tools: registry,
      toolSpecs: async (agent) => registry.specs(agent.tools),
      prices: new PriceTable(),
      logger: quiet,
      interceptors: [{ name: "events", stepCheckpointed: (e) => attemptEvents.step(e) }],
    },
    { owner: "planner-a", leaseTtlMs: 5_000, leaseRenewMs: 60_000, maxAttempts: 3, defaultMaxSteps: 20, now: () => 0 },
    {
      onClaimed: (t) => attemptEvents.claimed(t),
      onStarted: (id) => attemptEvents.started(id),
      onSettled: (id, outcome, detail) => attemptEvents.settled(id, outcome, detail),
    },
  );
  const control = new ApprovalControl({
    store,
    wakeUps: { publishCommitted: async (w) => void wakeUps.push(w) },
    logger: quiet,
    events: { emitter: { emit: (name, payload) => void events.push({ name, payload }) }, sink, node: "intake-a" },
  });
  return { worker, control, events, wakeUps, named: (name: string) => events.filter((e) => e.name === name).map((e) => e.payload) };
}

async function newTask(agent = "payments", tenant?: string): Promise<string> {
  const id = randomUUID();
  await store.createTask({ id, agent, input: { order_id: "ORD-7" }, priority: "normal", metadata: {}, prompt_version: "test", ...(tenant ? { tenant } : {}) });
  return id;
}

const shape = async (id: string) =>
  (await store.listSteps(id)).map((s) => (s.kind === "llm" ? `${s.step}:llm` : `${s.step}:${s.data.tool}:${s.data.ok ? "ok" : "error"}`));

describe("approvals - a gated call parks its task", () => {
  it("parks on the gated call with the exact tool_use recorded, the turn's other call run and checkpointed first", async () => {
    const { registry, runs, charges } = tools();
    const model = new ScriptedModel([askTurn, finalTurn]);
    const c = cluster(model, registry);
    const id = await newTask();

    expect(await c.worker.handle(id, undefined, "submitted")).toBe("awaiting_approval");
    // Parked: not claimable, its attempt given back (waiting for a person is not the task's failure).
    expect(await store.getTask(id)).toMatchObject({ status: "awaiting_approval", attempts: 0, steps: 2 });
    expect(await shape(id)).toEqual(["1:llm", "2:check_limit:ok"]);
    expect(charges()).toEqual([]);
    expect(runs.map((r) => r.tool)).toEqual(["check_limit"]);
    expect(await store.approvalOf(id, 3)).toMatchObject({ task_id: id, step: 3, tool_use_id: "tu_charge", tool: "charge_card", input: CHARGE, decision: null });

    const pending = PendingApprovalsSchema.parse(await c.control.pending({ status: "pending" }));
    const mine = pending.approvals.find((a) => a.task_id === id);
    expect(mine).toMatchObject({ agent: "payments", prompt_version: "test", step: 3, tool_use: { id: "tu_charge", name: "charge_card", input: CHARGE } });
    const window = Date.parse(mine?.deadline ?? "") - Date.parse(mine?.requested_at ?? "");
    expect(window).toBe(600_000);

    expect(c.named("clawfleet.task.awaiting_approval")).toEqual([
      expect.objectContaining({ task_id: id, status: "awaiting_approval", step: 2, tool: "charge_card", tool_input: CHARGE, node: "planner-a" }),
    ]);
    // A wake-up for a parked task claims nothing: the model is not asked again.
    expect(await c.worker.handle(id, undefined, "reaped")).toBe("ignored_unclaimable");
    expect(model.requests).toHaveLength(1);
  });

  it("approve: the call runs once, verbatim, under its own step's key, and no extra model call is made", async () => {
    const { registry, charges } = tools();
    const model = new ScriptedModel([askTurn, finalTurn]);
    const c = cluster(model, registry);
    const id = await newTask();
    expect(await c.worker.handle(id, undefined, "submitted")).toBe("awaiting_approval");

    const decided = await c.control.decide(id, { decision: "approve", reason: "looks right" }, "key-ops");
    expect(ApprovalDecidedSchema.parse(decided)).toEqual({ task_id: id, decision: "approve", status: "queued" });
    expect(c.wakeUps).toEqual([{ taskId: id, reason: "released" }]);
    expect(c.named(APPROVAL_DECIDED_EVENT).map((p) => ApprovalDecidedEventSchema.parse(p))).toEqual([
      expect.objectContaining({ task_id: id, tenant: "default", step: 3, tool: "charge_card", decision: "approve", by: "key-ops", reason: "looks right", node: "intake-a" }),
    ]);
    expect((await c.control.pending({})).approvals.map((a) => a.task_id)).not.toContain(id);

    expect(await c.worker.handle(id, undefined, "released")).toBe("succeeded");
    expect(charges()).toEqual([{ tool: "charge_card", input: CHARGE, key: `${id}:3` }]);
    // Two model calls in all: the turn that asked for the charge, and the one after its result.
    expect(model.requests).toHaveLength(2);
    expect(await shape(id)).toEqual(["1:llm", "2:check_limit:ok", "3:charge_card:ok", "4:llm"]);
    expect(await store.getTask(id)).toMatchObject({ status: "succeeded", result: { text: "Done." } });
    expect(await store.approvalOf(id, 3)).toMatchObject({ decision: "approve", reason: "looks right", decided_by: "key-ops" });
  });

  it("reject: the model gets an error result with the reason, checkpointed as the call's step; the call is never made", async () => {
    const { registry, charges } = tools();
    const model = new ScriptedModel([askTurn, finalTurn]);
    const c = cluster(model, registry);
    const id = await newTask();
    expect(await c.worker.handle(id, undefined, "submitted")).toBe("awaiting_approval");

    expect(await c.control.decide(id, { decision: "reject", reason: "over the customer's usual amount" }, "key-ops")).toMatchObject({ decision: "reject", status: "queued" });
    expect(await c.worker.handle(id, undefined, "released")).toBe("succeeded");

    expect(charges()).toEqual([]);
    expect(model.requests).toHaveLength(2);
    const results = model.requests[1]?.messages.at(-1)?.content;
    expect(results).toEqual([
      expect.objectContaining({ type: "tool_result", tool_use_id: "tu_limit" }),
      { type: "tool_result", tool_use_id: "tu_charge", content: "rejected by an operator: over the customer's usual amount", is_error: true },
    ]);
    const step = (await store.listSteps(id)).find((s) => s.step === 3);
    expect(step).toMatchObject({ kind: "tool", data: { tool: "charge_card", tool_use_id: "tu_charge", input: CHARGE, ok: false, output: "rejected by an operator: over the customer's usual amount" } });
  });

  it("two decisions at once: one is recorded, the other is approval_decided, and the task is woken once", async () => {
    const { registry } = tools();
    const c = cluster(new ScriptedModel([askTurn, finalTurn]), registry);
    const id = await newTask();
    expect(await c.worker.handle(id, undefined, "submitted")).toBe("awaiting_approval");

    const both = await Promise.allSettled([c.control.decide(id, { decision: "approve" }, "key-a"), c.control.decide(id, { decision: "reject" }, "key-b")]);
    const won = both.filter((r) => r.status === "fulfilled");
    const lost = both.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]?.reason).toBeInstanceOf(ApprovalDecidedError);
    const winner = won[0]?.value.decision;
    expect(await store.approvalOf(id, 3)).toMatchObject({ decision: winner, decided_by: winner === "approve" ? "key-a" : "key-b" });
    expect(c.wakeUps).toHaveLength(1);
    expect(c.named(APPROVAL_DECIDED_EVENT)).toHaveLength(1);
    // Later too, whatever the task is doing by then.
    await expect(c.control.decide(id, { decision: "approve" }, "key-c")).rejects.toMatchObject({ errorType: "approval_decided", data: { decision: winner } });
  });

  it("timeout: past its deadline the call is never made; the reaper's leader fails the task approval_timeout", async () => {
    const { registry, charges } = tools();
    const model = new ScriptedModel([askTurn, finalTurn]);
    const c = cluster(model, registry);
    const id = await newTask("payments-hasty");
    expect(await c.worker.handle(id, undefined, "submitted")).toBe("awaiting_approval");

    // A decision that comes after the deadline is refused: the timeout fails closed, even before the reaper runs.
    await expect(c.control.decide(id, { decision: "approve" }, "key-late")).rejects.toBeInstanceOf(NotAwaitingApprovalError);
    expect(await store.getTask(id)).toMatchObject({ status: "awaiting_approval" });

    // The reaper's loop, with the lease that elects it, applies the timeout on its next sweep.
    const reaper = new ReaperLoop(
      { store: () => store, leases: new MemoryLeaseManager(), wakeUps: { publish: async () => undefined }, queueDepth: async () => ({ waiting: 0 }), logger: quiet, approvals: () => c.control },
      { owner: "intake-a:reaper", intervalMs: 20, queuedAfterMs: 60_000 },
    );
    reaper.start();
    try {
      await expect.poll(async () => (await store.getTask(id))?.status, { timeout: 10_000 }).toBe("failed");
    } finally {
      reaper.stop();
    }
    const task = await store.getTask(id);
    expect(task?.error).toMatchObject({ type: "approval_timeout" });
    expect(task?.error?.message).toContain("charge_card (step 3)");
    expect((await store.listDeadLetters(1000)).find((d) => d.task_id === id)?.error.type).toBe("approval_timeout");
    expect(await store.approvalOf(id, 3)).toMatchObject({ decision: "timeout" });
    expect(c.named("clawfleet.task.failed")).toEqual([expect.objectContaining({ task_id: id, status: "failed", error: expect.objectContaining({ type: "approval_timeout" }), node: "intake-a" })]);

    await expect(c.control.decide(id, { decision: "approve" }, "key-late")).rejects.toMatchObject({ errorType: "not_awaiting_approval", data: { status: "failed" } });
    expect(await c.worker.handle(id, undefined, "reaped")).toBe("ignored_terminal");
    expect(charges()).toEqual([]);
    expect(model.requests).toHaveLength(1);
  });

  it("a redriven task whose call timed out asks again, with a fresh deadline, and runs once approved", async () => {
    const { registry, charges } = tools();
    const model = new ScriptedModel([askTurn, finalTurn]);
    const c = cluster(model, registry);
    const id = await newTask("payments-hasty");
    expect(await c.worker.handle(id, undefined, "submitted")).toBe("awaiting_approval");
    expect(await c.control.expire()).toBe(1);
    expect(await c.control.expire()).toBe(0);

    // The agent is given a longer deadline, and the failed task redriven.
    const patient = cluster(model, registry, [{ ...HASTY, approval: { tools: ["charge_card"], timeoutSeconds: 600 } }]);
    expect(await store.redrive(id)).toBe(true);
    expect(await patient.worker.handle(id, undefined, "redrive")).toBe("awaiting_approval");
    const again = await store.approvalOf(id, 3);
    expect(again).toMatchObject({ decision: null, decided_by: null, tool_use_id: "tu_charge" });
    expect(Date.parse(again?.deadline ?? "") - Date.parse(again?.requested_at ?? "")).toBe(600_000);

    expect(await patient.control.decide(id, { decision: "approve" }, "key-ops")).toMatchObject({ decision: "approve" });
    expect(await patient.worker.handle(id, undefined, "released")).toBe("succeeded");
    expect(charges()).toEqual([{ tool: "charge_card", input: CHARGE, key: `${id}:3` }]);
    expect(model.requests).toHaveLength(2);
  });

  it("a task cancelled while it waits leaves the pending list, and takes no decision", async () => {
    const { registry, charges } = tools();
    const c = cluster(new ScriptedModel([askTurn, finalTurn]), registry);
    const id = await newTask();
    expect(await c.worker.handle(id, undefined, "submitted")).toBe("awaiting_approval");
    expect((await c.control.pending({})).approvals.map((a) => a.task_id)).toContain(id);

    expect(await store.cancelTask(id, undefined, "key-ops", "changed our mind")).toMatchObject({ outcome: "cancelled", previous_status: "awaiting_approval" });
    expect((await c.control.pending({})).approvals.map((a) => a.task_id)).not.toContain(id);
    await expect(c.control.decide(id, { decision: "approve" }, "key-ops")).rejects.toMatchObject({ errorType: "not_awaiting_approval", data: { status: "cancelled" } });
    expect(await store.getTask(id)).toMatchObject({ status: "cancelled" });
    expect(charges()).toEqual([]);
  });
});

describe("approvals - decisions that are refused", () => {
  it("an unknown task, another tenant's, one waiting on no call, a bad body, a call that is not the pending one", async () => {
    const { registry } = tools();
    const c = cluster(new ScriptedModel([askTurn, finalTurn]), registry);
    await expect(c.control.decide(randomUUID(), { decision: "approve" }, "k")).rejects.toBeInstanceOf(TaskNotFoundError);
    await expect(c.control.decide("not-a-task-id", { decision: "approve" }, "k")).rejects.toBeInstanceOf(TaskNotFoundError);

    const id = await newTask("payments", "acme");
    await expect(c.control.decide(id, { decision: "approve" }, "k")).rejects.toMatchObject({ errorType: "not_awaiting_approval", data: { status: "queued" } });
    expect(await c.worker.handle(id, undefined, "submitted")).toBe("awaiting_approval");
    await expect(c.control.decide(id, { decision: "approve" }, "k", "someone-else")).rejects.toBeInstanceOf(TaskNotFoundError);
    expect((await c.control.pending({}, "someone-else")).approvals).toEqual([]);
    expect((await c.control.pending({}, "acme")).approvals.map((a) => a.task_id)).toEqual([id]);

    await expect(c.control.decide(id, { decision: "maybe" }, "k", "acme")).rejects.toMatchObject({ errorType: "validation_error", data: { field: "decision" } });
    await expect(c.control.decide(id, undefined, "k", "acme")).rejects.toBeInstanceOf(ValidationError);
    await expect(c.control.decide(id, { decision: "approve", extra: 1 }, "k", "acme")).rejects.toBeInstanceOf(ValidationError);
    await expect(c.control.pending({ status: "decided" })).rejects.toMatchObject({ errorType: "validation_error", data: { field: "status" } });
    await expect(c.control.decide(id, { decision: "approve", tool_use_id: "tu_other" }, "k", "acme")).rejects.toBeInstanceOf(NotAwaitingApprovalError);
    expect(await c.control.decide(id, { decision: "approve", tool_use_id: "tu_charge" }, "k", "acme")).toMatchObject({ decision: "approve" });
  });
});

describe("approvals - agent files", () => {
  it("approval names tools of the agent's own, with a deadline an hour long unless it says otherwise", () => {
    expect(parseAgentFile(agentFile(["approval:", "  tools: [charge_card]"]), "inline").approval).toEqual({ tools: ["charge_card"], timeoutSeconds: 3600 });
    expect(AGENT.approval).toEqual({ tools: ["charge_card"], timeoutSeconds: 600 });
    expect(parseAgentFile(agentFile([]), "inline").approval).toBeUndefined();
    expect(() => parseAgentFile(agentFile(["approval:", "  tools: [wire_money]"]), "inline")).toThrow(ConfigError);
    expect(() => parseAgentFile(agentFile(["approval:", "  tools: []"]), "inline")).toThrow(/approval.tools/);
    expect(() => parseAgentFile(agentFile(["approval:", "  tools: [charge_card]", "  timeout_seconds: 0"]), "inline")).toThrow(/approval.timeout_seconds/);
  });

  it("a gate names a tool, or every tool of an MCP server", () => {
    expect(needsApproval(AGENT, "charge_card")).toBe(true);
    expect(needsApproval(AGENT, "check_limit")).toBe(false);
    const mcp = { approval: { tools: ["bank__*"], timeoutSeconds: 60 } };
    expect(needsApproval(mcp, "bank__transfer")).toBe(true);
    expect(needsApproval(mcp, "bankx__transfer")).toBe(false);
    expect(needsApproval({}, "charge_card")).toBe(false);
  });
});
