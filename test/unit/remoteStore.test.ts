/**
 * remote store - both ends of the store over the broker, built from the store's
 * method table: each call becomes the `checkpoint` action with the params it
 * always carried, and the service hands the store back the same arguments.
 */
import { describe, expect, it } from "vitest";
import { emptyUsage, STORE_METHOD_NAMES, type NewStep, type NewTask, type StoreMethodName } from "../../src/contracts";
import { ValidationError } from "../../src/errors";
import { RemoteTaskStore, serveStoreCall, type TaskStore } from "../../src/store";

const ID = "0b7c6f7e-6a0e-4d8e-9d55-0a3f2b1c9e01";
const task: NewTask = { id: ID, agent: "order-router", input: "route ORD-1", priority: "high", metadata: {}, prompt_version: "pv-1" };
const step: NewStep = {
  kind: "tool",
  step: 2,
  data: { tool: "route_order", tool_use_id: "toolu_1", input: {}, output: { ok: 1 }, ok: true, duration_ms: 3, idempotency_key: `${ID}:2` },
};
const KEY_ID = "0123456789abcdef";
const newKey = { id: KEY_ID, tenant: "acme", scopes: ["read" as const], secret_hash: "a".repeat(64) };
const usage = { input_tokens: 1, output_tokens: 2, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: 0.1 };
const webhookAttempt = { started_at: "2026-03-14T09:00:00.000Z", duration_ms: 40, status_code: 500, error: null, next: { state: "pending" as const, retry_in_ms: 2000 } };

/** Each method called once, with the action params it sends and the arguments the store receives. */
const CALLS: Array<{ call: (s: TaskStore) => Promise<unknown>; action: StoreMethodName; params: Record<string, unknown>; args: unknown[] }> = [
  { call: (s) => s.createTask(task, "key-1"), action: "createTask", params: { task, idempotencyKey: "key-1" }, args: [task, "key-1"] },
  { call: (s) => s.createTask(task), action: "createTask", params: { task, idempotencyKey: undefined }, args: [task, undefined] },
  {
    call: (s) => s.createTasks([{ task }, { task, idempotencyKey: "key-2" }]),
    action: "createTasks",
    params: { items: [{ task }, { task, idempotencyKey: "key-2" }] },
    args: [[{ task }, { task, idempotencyKey: "key-2" }]],
  },
  { call: (s) => s.getTask(ID), action: "getTask", params: { id: ID }, args: [ID] },
  { call: (s) => s.taskByIdempotencyKey("key-1", "acme"), action: "taskByIdempotencyKey", params: { key: "key-1", tenant: "acme" }, args: ["key-1", "acme"] },
  { call: (s) => s.listSteps(ID), action: "listSteps", params: { taskId: ID }, args: [ID] },
  { call: (s) => s.claimTask(ID, "node-1"), action: "claimTask", params: { id: ID, owner: "node-1" }, args: [ID, "node-1"] },
  {
    call: (s) => s.claimNext("node-1", { default: 5, tenants: { acme: null, beta: 2 } }),
    action: "claimNext",
    params: { owner: "node-1", caps: { default: 5, tenants: { acme: null, beta: 2 } } },
    args: ["node-1", { default: 5, tenants: { acme: null, beta: 2 } }],
  },
  { call: (s) => s.queuedHead("acme"), action: "queuedHead", params: { tenant: "acme" }, args: ["acme"] },
  { call: (s) => s.appendStep(ID, 3, step, usage), action: "appendStep", params: { taskId: ID, fence: 3, step, usageDelta: usage }, args: [ID, 3, step, usage] },
  {
    call: (s) => s.appendStep(ID, 3, step, usage, [{ idempotencyKey: `${ID}:3`, step: 3, tool: "route_order" }]),
    action: "appendStep",
    params: { taskId: ID, fence: 3, step, usageDelta: usage, marks: [{ idempotencyKey: `${ID}:3`, step: 3, tool: "route_order" }] },
    args: [ID, 3, step, usage, [{ idempotencyKey: `${ID}:3`, step: 3, tool: "route_order" }]],
  },
  {
    call: (s) => s.appendSteps(ID, 3, [{ step, usageDelta: usage }, { step: { ...step, step: 4 } }]),
    action: "appendSteps",
    params: { taskId: ID, fence: 3, steps: [{ step, usageDelta: usage }, { step: { ...step, step: 4 } }] },
    args: [ID, 3, [{ step, usageDelta: usage }, { step: { ...step, step: 4 } }]],
  },
  {
    call: (s) => s.finishTask(ID, 3, { status: "failed", error: { type: "x", message: "y" } }),
    action: "finishTask",
    params: { taskId: ID, fence: 3, outcome: { status: "failed", error: { type: "x", message: "y" } } },
    args: [ID, 3, { status: "failed", error: { type: "x", message: "y" } }],
  },
  {
    call: (s) => s.finishWithStep(ID, 3, { status: "succeeded", result: "ok" }, { step, usageDelta: usage }),
    action: "finishWithStep",
    params: { taskId: ID, fence: 3, outcome: { status: "succeeded", result: "ok" }, last: { step, usageDelta: usage } },
    args: [ID, 3, { status: "succeeded", result: "ok" }, { step, usageDelta: usage }],
  },
  {
    call: (s) => s.releaseTask(ID, 3),
    action: "releaseTask",
    params: { taskId: ID, fence: 3, countAttempt: true, notBeforeMs: 0 },
    args: [ID, 3, { countAttempt: true, notBeforeMs: 0 }],
  },
  {
    call: (s) => s.releaseTask(ID, 3, { countAttempt: false, notBeforeMs: 1500 }),
    action: "releaseTask",
    params: { taskId: ID, fence: 3, countAttempt: false, notBeforeMs: 1500 },
    args: [ID, 3, { countAttempt: false, notBeforeMs: 1500 }],
  },
  { call: (s) => s.touchWakeup([ID]), action: "touchWakeup", params: { taskIds: [ID] }, args: [[ID]] },
  { call: (s) => s.listStaleQueued(5000, 10), action: "listStaleQueued", params: { olderThanMs: 5000, limit: 10 }, args: [5000, 10] },
  { call: (s) => s.listRunning(10), action: "listRunning", params: { limit: 10 }, args: [10] },
  { call: (s) => s.countByStatus(), action: "countByStatus", params: {}, args: [] },
  { call: (s) => s.countOpenWork(), action: "countOpenWork", params: {}, args: [] },
  {
    call: (s) => s.claimNext("node-1", { default: null, tenants: {} }, { agents: ["order-router"], prompt_versions: ["0123456789ab"] }),
    action: "claimNext",
    params: { owner: "node-1", caps: { default: null, tenants: {} }, exclude: { agents: ["order-router"], prompt_versions: ["0123456789ab"] } },
    args: ["node-1", { default: null, tenants: {} }, { agents: ["order-router"], prompt_versions: ["0123456789ab"] }],
  },
  {
    call: (s) => s.setSwitch({ kind: "tool", name: "route_order", paused: true, in_flight: "abort", by: "k1" }),
    action: "setSwitch",
    params: { change: { kind: "tool", name: "route_order", paused: true, in_flight: "abort", by: "k1" } },
    args: [{ kind: "tool", name: "route_order", paused: true, in_flight: "abort", by: "k1" }],
  },
  { call: (s) => s.listSwitches(), action: "listSwitches", params: {}, args: [] },
  { call: (s) => s.listSwitchChanges(20), action: "listSwitchChanges", params: { limit: 20 }, args: [20, {}] },
  {
    call: (s) => s.listSwitchChanges(5, { kind: "agent", name: "order-router" }),
    action: "listSwitchChanges",
    params: { limit: 5, kind: "agent", name: "order-router" },
    args: [5, { kind: "agent", name: "order-router" }],
  },
  {
    call: (s) => s.tasksOfScope({ kind: "prompt", name: "0123456789ab" }, "queued", 100),
    action: "tasksOfScope",
    params: { scope: { kind: "prompt", name: "0123456789ab" }, status: "queued", limit: 100 },
    args: [{ kind: "prompt", name: "0123456789ab" }, "queued", 100],
  },
  {
    call: (s) => s.agentCostSince("order-router", "2031-05-06T00:00:00.000Z"),
    action: "agentCostSince",
    params: { agent: "order-router", since: "2031-05-06T00:00:00.000Z" },
    args: ["order-router", "2031-05-06T00:00:00.000Z"],
  },
  { call: (s) => s.purgeIdempotencyKeys(500), action: "purgeIdempotencyKeys", params: { limit: 500 }, args: [500] },
  {
    call: (s) => s.listTasks({ tenant: "acme", status: "failed", limit: 20, cursor: "abc" }),
    action: "listTasks",
    params: { tenant: "acme", status: "failed", limit: 20, cursor: "abc" },
    args: [{ tenant: "acme", status: "failed", limit: 20, cursor: "abc" }],
  },
  { call: (s) => s.listDeadLetters(100), action: "listDeadLetters", params: { limit: 100 }, args: [100] },
  { call: (s) => s.redrive(ID), action: "redrive", params: { taskId: ID }, args: [ID] },
  { call: (s) => s.getTask(ID, "acme"), action: "getTask", params: { id: ID, tenant: "acme" }, args: [ID, "acme"] },
  { call: (s) => s.listSteps(ID, "acme"), action: "listSteps", params: { taskId: ID, tenant: "acme" }, args: [ID, "acme"] },
  { call: (s) => s.listDeadLetters(10, "acme"), action: "listDeadLetters", params: { limit: 10, tenant: "acme" }, args: [10, "acme"] },
  { call: (s) => s.redrive(ID, "acme"), action: "redrive", params: { taskId: ID, tenant: "acme" }, args: [ID, "acme"] },
  { call: (s) => s.cancelTask(ID, "acme", "k1", "dup"), action: "cancelTask", params: { taskId: ID, tenant: "acme", by: "k1", reason: "dup" }, args: [ID, "acme", "k1", "dup"] },
  { call: (s) => s.cancelTask(ID, undefined, "repl:n1"), action: "cancelTask", params: { taskId: ID, by: "repl:n1" }, args: [ID, undefined, "repl:n1", undefined] },
  {
    call: (s) => s.addUsage(ID, { ...emptyUsage(), input_tokens: 120, cost_usd: 0.0004 }),
    action: "addUsage",
    params: { taskId: ID, usage: { ...emptyUsage(), input_tokens: 120, cost_usd: 0.0004 } },
    args: [ID, { ...emptyUsage(), input_tokens: 120, cost_usd: 0.0004 }],
  },
  {
    call: (s) => s.awaitApproval(ID, 3, { step: 2, tool_use_id: "toolu_1", tool: "route_order", input: { x: 1 }, timeout_seconds: 60 }),
    action: "awaitApproval",
    params: { taskId: ID, fence: 3, request: { step: 2, tool_use_id: "toolu_1", tool: "route_order", input: { x: 1 }, timeout_seconds: 60 } },
    args: [ID, 3, { step: 2, tool_use_id: "toolu_1", tool: "route_order", input: { x: 1 }, timeout_seconds: 60 }],
  },
  { call: (s) => s.approvalOf(ID, 2), action: "approvalOf", params: { taskId: ID, step: 2 }, args: [ID, 2] },
  {
    call: (s) => s.decideApproval(ID, { decision: "reject", reason: "no", by: "k1" }, "acme"),
    action: "decideApproval",
    params: { taskId: ID, decision: { decision: "reject", reason: "no", by: "k1" }, tenant: "acme" },
    args: [ID, { decision: "reject", reason: "no", by: "k1" }, "acme"],
  },
  { call: (s) => s.decideApproval(ID, { decision: "approve", by: "k1" }), action: "decideApproval", params: { taskId: ID, decision: { decision: "approve", by: "k1" } }, args: [ID, { decision: "approve", by: "k1" }] },
  { call: (s) => s.listApprovals(50, "acme"), action: "listApprovals", params: { limit: 50, tenant: "acme" }, args: [50, "acme"] },
  { call: (s) => s.listApprovals(50), action: "listApprovals", params: { limit: 50 }, args: [50] },
  { call: (s) => s.expireApprovals(100), action: "expireApprovals", params: { limit: 100 }, args: [100] },
  { call: (s) => s.createKey(newKey), action: "createKey", params: { key: newKey }, args: [newKey] },
  {
    call: (s) => s.createKey(newKey, { id: KEY_ID, overlap_seconds: 60 }),
    action: "createKey",
    params: { key: newKey, replaces: { id: KEY_ID, overlap_seconds: 60 } },
    args: [newKey, { id: KEY_ID, overlap_seconds: 60 }],
  },
  { call: (s) => s.findKey(KEY_ID), action: "findKey", params: { id: KEY_ID }, args: [KEY_ID] },
  { call: (s) => s.listKeys(), action: "listKeys", params: {}, args: [] },
  { call: (s) => s.listKeys("acme"), action: "listKeys", params: { tenant: "acme" }, args: ["acme"] },
  { call: (s) => s.revokeKey(KEY_ID, "acme"), action: "revokeKey", params: { id: KEY_ID, tenant: "acme" }, args: [KEY_ID, "acme"] },
  {
    call: (s) => s.toolCallStarted(`${ID}:2`, ID, 2, "route_order"),
    action: "toolCallStarted",
    params: { idempotencyKey: `${ID}:2`, taskId: ID, step: 2, tool: "route_order" },
    args: [`${ID}:2`, ID, 2, "route_order"],
  },
  { call: (s) => s.getToolCall(`${ID}:2`), action: "getToolCall", params: { idempotencyKey: `${ID}:2` }, args: [`${ID}:2`] },
  {
    call: (s) => s.toolCallFinished(`${ID}:2`, { ok: true, output: { routed: 1 } }),
    action: "toolCallFinished",
    params: { idempotencyKey: `${ID}:2`, outcome: { ok: true, output: { routed: 1 } } },
    args: [`${ID}:2`, { ok: true, output: { routed: 1 } }],
  },
  { call: (s) => s.toolCallUnmark([`${ID}:2`]), action: "toolCallUnmark", params: { idempotencyKeys: [`${ID}:2`] }, args: [[`${ID}:2`]] },
  {
    call: (s) => s.canaryStats("order-router", "v-stable", "v-canary", "2026-03-14T09:00:00.000Z"),
    action: "canaryStats",
    params: { agent: "order-router", stableVersion: "v-stable", canaryVersion: "v-canary", since: "2026-03-14T09:00:00.000Z" },
    args: ["order-router", "v-stable", "v-canary", "2026-03-14T09:00:00.000Z"],
  },
  {
    call: (s) => s.canaryStats("order-router", "v-stable", "v-canary", "2026-03-14T09:00:00.000Z", "2026-03-14T09:05:00.000Z"),
    action: "canaryStats",
    params: { agent: "order-router", stableVersion: "v-stable", canaryVersion: "v-canary", since: "2026-03-14T09:00:00.000Z", stepSince: "2026-03-14T09:05:00.000Z" },
    args: ["order-router", "v-stable", "v-canary", "2026-03-14T09:00:00.000Z", "2026-03-14T09:05:00.000Z"],
  },
  {
    call: (s) => s.putAgentVersion({ agent: "order-router", version: "abc123def456", source: "---\n---\n", origin: "canary" }),
    action: "putAgentVersion",
    params: { version: { agent: "order-router", version: "abc123def456", source: "---\n---\n", origin: "canary" } },
    args: [{ agent: "order-router", version: "abc123def456", source: "---\n---\n", origin: "canary" }],
  },
  { call: (s) => s.getAgentVersion("order-router", "abc123def456"), action: "getAgentVersion", params: { agent: "order-router", version: "abc123def456" }, args: ["order-router", "abc123def456"] },
  { call: (s) => s.listAgentVersions("order-router"), action: "listAgentVersions", params: { agent: "order-router" }, args: ["order-router"] },
  { call: (s) => s.getRollout("order-router"), action: "getRollout", params: { agent: "order-router" }, args: ["order-router"] },
  { call: (s) => s.listRollouts(), action: "listRollouts", params: {}, args: [] },
  {
    call: (s) => s.syncFileVersion("order-router", "abc123def456", "---\n---\n"),
    action: "syncFileVersion",
    params: { agent: "order-router", version: "abc123def456", source: "---\n---\n" },
    args: ["order-router", "abc123def456", "---\n---\n"],
  },
  {
    call: (s) => s.startCanary("order-router", "abc123def456", "---\n---\n", [5, 25, 50, 100], 10, "k1"),
    action: "startCanary",
    params: { agent: "order-router", version: "abc123def456", source: "---\n---\n", steps: [5, 25, 50, 100], minTasksPerStep: 10, by: "k1" },
    args: ["order-router", "abc123def456", "---\n---\n", [5, 25, 50, 100], 10, "k1"],
  },
  { call: (s) => s.abortCanary("order-router", "k1"), action: "abortCanary", params: { agent: "order-router", by: "k1" }, args: ["order-router", "k1"] },
  {
    call: (s) => s.decideCanary("order-router", 3, { canary_state: "rolled_back", canary_weight: 0 }),
    action: "decideCanary",
    params: { agent: "order-router", expectedRevision: 3, change: { canary_state: "rolled_back", canary_weight: 0 } },
    args: ["order-router", 3, { canary_state: "rolled_back", canary_weight: 0 }],
  },
  { call: (s) => s.listStepsAfter(ID, 4, 500, "acme"), action: "listStepsAfter", params: { taskId: ID, afterStep: 4, limit: 500, tenant: "acme" }, args: [ID, 4, 500, "acme"] },
  { call: (s) => s.listStepsAfter(ID, 0, 10), action: "listStepsAfter", params: { taskId: ID, afterStep: 0, limit: 10 }, args: [ID, 0, 10] },
  { call: (s) => s.claimWebhooks("node-1:webhooks", 16, 21_000), action: "claimWebhooks", params: { owner: "node-1:webhooks", limit: 16, leaseMs: 21_000 }, args: ["node-1:webhooks", 16, 21_000] },
  {
    call: (s) => s.recordWebhookAttempt("msg_1", "node-1:webhooks", 2, webhookAttempt),
    action: "recordWebhookAttempt",
    params: { id: "msg_1", owner: "node-1:webhooks", attempt: 2, result: webhookAttempt },
    args: ["msg_1", "node-1:webhooks", 2, webhookAttempt],
  },
  { call: (s) => s.taskWebhook(ID, "acme"), action: "taskWebhook", params: { taskId: ID, tenant: "acme" }, args: [ID, "acme"] },
];

/** A store that records what it was called with and answers its own method name. */
function recordingStore(calls: Array<{ method: string; args: unknown[] }>): TaskStore {
  const store: Record<string, unknown> = { migrate: async () => undefined, close: async () => undefined };
  for (const name of STORE_METHOD_NAMES) {
    store[name] = async (...args: unknown[]) => {
      calls.push({ method: name, args });
      return `answer of ${name}`;
    };
  }
  return store as unknown as TaskStore;
}

describe("remote store", () => {
  it("covers every method of the table", () => {
    expect(new Set(CALLS.map((c) => c.action))).toEqual(new Set(STORE_METHOD_NAMES));
  });

  it("each method calls its checkpoint action with its params and answers what the action answers", async () => {
    for (const c of CALLS) {
      const sent: Array<{ action: string; params: Record<string, unknown> }> = [];
      const store = new RemoteTaskStore(async <T>(action: string, params: Record<string, unknown>) => {
        sent.push({ action, params });
        return "answer" as T;
      });
      expect(await c.call(store)).toBe("answer");
      expect(sent).toEqual([{ action: `checkpoint.${c.action}`, params: c.params }]);
    }
  });

  it("names the service it was given", async () => {
    const actions: string[] = [];
    const store = new RemoteTaskStore(async <T>(action: string) => {
      actions.push(action);
      return null as T;
    }, "checkpoint-b");
    await store.getTask(ID);
    expect(actions).toEqual(["checkpoint-b.getTask"]);
  });

  it("the service side hands the store the arguments the caller passed", async () => {
    for (const c of CALLS) {
      const received: Array<{ method: string; args: unknown[] }> = [];
      const answer = await serveStoreCall(recordingStore(received), c.action, JSON.parse(JSON.stringify(c.params)), `checkpoint.${c.action}`);
      expect(answer).toBe(`answer of ${c.action}`);
      expect(received).toEqual([{ method: c.action, args: c.args }]);
    }
  });

  it("a call made on the same node hands the store the same arguments", async () => {
    for (const c of CALLS) {
      const received: Array<{ method: string; args: unknown[] }> = [];
      const served = recordingStore(received);
      // The broker on one node passes the params object itself: nothing serializes it.
      const local = new RemoteTaskStore(<T>(action: string, params: Record<string, unknown>) => serveStoreCall(served, action.slice("checkpoint.".length) as StoreMethodName, params, action) as Promise<T>);
      expect(await c.call(local)).toBe(`answer of ${c.action}`);
      expect(received).toEqual([{ method: c.action, args: c.args }]);
    }
  });

  it("the methods a caller declares typed reach a store on the same node as they are, not copied; the others are validated", async () => {
    const received: Array<{ method: string; args: unknown[] }> = [];
    const served = recordingStore(received);
    // As the broker answers: a handler's throw is the call's rejection.
    const serve = async <T>(action: string, params: Record<string, unknown>) => serveStoreCall(served, action.slice("checkpoint.".length) as StoreMethodName, params, action) as Promise<T>;
    const planner = new RemoteTaskStore(serve, "checkpoint", ["appendStep", "finishWithStep"]);
    await planner.appendStep(ID, 3, step, usage);
    await planner.finishWithStep(ID, 3, { status: "succeeded", result: "ok" }, { step, usageDelta: usage });
    expect(received[0]?.args[2]).toBe(step);
    expect((received[1]?.args[3] as { step: unknown }).step).toBe(step);
    // Not declared typed: validated on the same node too, so what the schema alone checks still holds.
    await expect(planner.syncFileVersion("order-router", "abc123def456", "x".repeat(300_000))).rejects.toThrow(/field "source"/);
    const untyped = new RemoteTaskStore(serve);
    await untyped.appendStep(ID, 3, step, usage);
    expect(received[2]?.args[2]).toEqual(step);
    expect(received[2]?.args[2]).not.toBe(step);
  });

  it("params that crossed the transport are validated even when the caller was typed", async () => {
    const sent: Array<Record<string, unknown>> = [];
    const caller = new RemoteTaskStore(async <T>(_action: string, params: Record<string, unknown>) => {
      sent.push(params);
      return undefined as T;
    });
    // A typed caller that got the types wrong at run time (a stale build on another node, say).
    await caller.appendStep(ID, -1, step);
    const overTheWire = JSON.parse(JSON.stringify(sent[0])) as unknown;
    expect(() => serveStoreCall(recordingStore([]), "appendStep", overTheWire, "checkpoint.appendStep")).toThrow(/field "fence"/);
  });

  it("the service side refuses bad params with a ValidationError naming the field", () => {
    const bad = () => serveStoreCall(recordingStore([]), "appendStep", { taskId: ID, fence: -1, step }, "checkpoint.appendStep");
    expect(bad).toThrow(ValidationError);
    expect(bad).toThrow(/field "fence"/);
  });

  it("the service side fills defaults the caller may leave out", async () => {
    const received: Array<{ method: string; args: unknown[] }> = [];
    await serveStoreCall(recordingStore(received), "releaseTask", { taskId: ID, fence: 1 }, "checkpoint.releaseTask");
    await serveStoreCall(recordingStore(received), "listDeadLetters", {}, "checkpoint.listDeadLetters");
    expect(received).toEqual([
      { method: "releaseTask", args: [ID, 1, { countAttempt: true, notBeforeMs: 0 }] },
      { method: "listDeadLetters", args: [100] },
    ]);
  });
});
