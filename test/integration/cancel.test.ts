/**
 * cancel - the store's one statement, against PGlite and a real Postgres (the
 * fence bump that refuses the running attempt's late writes, what a cancel
 * answers for each status, a cancel racing a finish), then the REST contract on a
 * real embedded node in front of a separate simulated model: 202 within the
 * attempt's abort, the model request aborted at the model, a tool in flight
 * asked to stop and none started after the answer, 404/409/403/422.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { defineAgent, defineTool, startNode, type RunningNode } from "../../app";
import { emptyUsage, type NewStep, type TaskStatus } from "../../src/contracts";
import { StaleFenceError } from "../../src/errors";
import { startSimServer, type SimServer } from "../../src/sim";
import { bearer, issueTestKey, TEST_ADMIN_KEY } from "../../testkit/auth";
import { uniqueId } from "../helpers/services";
import { storeBackends, type OpenedBackend } from "../helpers/storeBackends";

const backends = storeBackends({ max: 8 });

const NO_CAPS = { default: null, tenants: {} };

const llmStep = (step: number): NewStep => ({
  kind: "llm",
  step,
  data: { model: "claude-haiku-4-5", tier: "main", stop_reason: "end_turn", usage: emptyUsage(), content: [{ type: "text", text: "hi" }], duration_ms: 3 },
});

for (const backend of backends) {
  describe.skipIf(!backend.ready)(`cancel - the store statement (${backend.name})`, () => {
    let db: OpenedBackend;
    beforeAll(async () => {
      db = await backend.open();
    }, 60_000);
    afterAll(async () => {
      await db?.dispose();
    });

    async function task(tenant = "default"): Promise<string> {
      const id = randomUUID();
      await db.store.createTask({ id, agent: "slow-worker", input: "x", priority: "normal", metadata: {}, prompt_version: "pv", tenant });
      return id;
    }

    async function running(): Promise<{ id: string; fence: number }> {
      const id = await task();
      const claim = await db.store.claimTask(id, "planner-9");
      if (!claim) throw new Error("not claimed");
      return { id, fence: claim.fence };
    }

    it("cancel - a running task: cancelled with who and why, its fence bumped; every later write of its attempt is refused as stale", async () => {
      const { id, fence } = await running();
      await db.store.appendStep(id, fence, llmStep(1));

      const r = await db.store.cancelTask(id, undefined, "key-1", "wrong order");
      expect(r).toMatchObject({ outcome: "cancelled", previous_status: "running", lease_owner: "planner-9" });
      expect(r.task).toMatchObject({ id, status: "cancelled", fence: fence + 1, cancelled_by: "key-1", cancel_reason: "wrong order", steps: 1 });
      expect(r.task?.finished_at).not.toBeNull();

      await expect(db.store.appendStep(id, fence, llmStep(2))).rejects.toBeInstanceOf(StaleFenceError);
      await expect(db.store.finishTask(id, fence, { status: "succeeded", result: "late" })).rejects.toBeInstanceOf(StaleFenceError);
      await expect(db.store.releaseTask(id, fence, { countAttempt: false })).rejects.toBeInstanceOf(StaleFenceError);
      expect(await db.store.getTask(id)).toMatchObject({ status: "cancelled", result: null, steps: 1, fence: fence + 1 });
      expect((await db.store.listSteps(id)).map((s) => s.step)).toEqual([1]);
      // Nor can a reaper's take-over claim it back.
      expect(await db.store.claimTask(id, "planner-10")).toBeNull();
    });

    it("cancel - queued and awaiting approval are cancelled too; a queued one is never claimed", async () => {
      const queued = await task();
      expect(await db.store.cancelTask(queued, undefined, "k")).toMatchObject({ outcome: "cancelled", previous_status: "queued", lease_owner: null });
      expect(await db.store.claimNext("planner-1", NO_CAPS)).toBeNull();

      const parked = await task();
      await db.pool.query("UPDATE tasks SET status = 'awaiting_approval' WHERE id = $1", [parked]);
      expect(await db.store.cancelTask(parked, undefined, "k")).toMatchObject({ outcome: "cancelled", previous_status: "awaiting_approval" });
      expect((await db.store.getTask(parked))?.status).toBe("cancelled");
    });

    it("cancel - a finished task is left as it is; a cancelled one answers already_cancelled and keeps who cancelled it first", async () => {
      for (const status of ["succeeded", "failed"] as const) {
        const { id, fence } = await running();
        await db.store.finishTask(id, fence, status === "failed" ? { status, error: { type: "x", message: "y" } } : { status, result: 1 });
        expect(await db.store.cancelTask(id, undefined, "k")).toEqual({ outcome: "finished", previous_status: status, lease_owner: null, task: null });
        expect(await db.store.getTask(id)).toMatchObject({ status, fence });
        expect((await db.store.getTask(id))?.cancelled_by).toBeUndefined();
      }
      const id = await task();
      await db.store.cancelTask(id, undefined, "first");
      expect(await db.store.cancelTask(id, undefined, "second")).toMatchObject({ outcome: "already_cancelled", previous_status: "cancelled", task: null });
      expect(await db.store.getTask(id)).toMatchObject({ cancelled_by: "first", fence: 1 });
    });

    it("cancel - an unknown id, a malformed one and another tenant's task are not found, and nothing changes", async () => {
      const theirs = await task("tenant-a");
      for (const [id, tenant] of [[randomUUID(), undefined], ["nope", undefined], [theirs, "tenant-b"]] as const) {
        expect(await db.store.cancelTask(id, tenant, "k")).toEqual({ outcome: "not_found", previous_status: null, lease_owner: null, task: null });
      }
      expect(await db.store.getTask(theirs)).toMatchObject({ status: "queued", fence: 0 });
      expect(await db.store.cancelTask(theirs, "tenant-a", "k")).toMatchObject({ outcome: "cancelled" });
    });

    it("cancel - addUsage adds to a cancelled task's usage without a fence", async () => {
      const { id, fence } = await running();
      await db.store.cancelTask(id, undefined, "k");
      expect(await db.store.addUsage(id, { ...emptyUsage(), input_tokens: 120, cost_usd: 0.0005 })).toBe(true);
      expect(await db.store.addUsage(id, { ...emptyUsage(), input_tokens: 30, output_tokens: 4 })).toBe(true);
      expect((await db.store.getTask(id))?.usage).toMatchObject({ input_tokens: 150, output_tokens: 4, cost_usd: 0.0005 });
      expect(await db.store.addUsage(randomUUID(), emptyUsage())).toBe(false);
      void fence;
    });

    it("cancel - racing a finish, exactly one of them wins each task, and the loser changes nothing", async () => {
      const tasks = await Promise.all(Array.from({ length: 40 }, () => running()));
      const outcomes = await Promise.all(
        tasks.map(async ({ id, fence }) => {
          const [cancel, finish] = await Promise.allSettled([db.store.cancelTask(id, undefined, "racer"), db.store.finishTask(id, fence, { status: "succeeded", result: "won" })]);
          const row = await db.store.getTask(id);
          return { cancel, finish, status: row?.status as TaskStatus, fence: row?.fence, start: fence };
        }),
      );
      for (const o of outcomes) {
        if (o.status === "cancelled") {
          expect(o.cancel).toMatchObject({ status: "fulfilled", value: { outcome: "cancelled" } });
          expect(o.finish.status === "rejected" && o.finish.reason instanceof StaleFenceError).toBe(true);
          expect(o.fence).toBe(o.start + 1);
        } else {
          expect(o.status).toBe("succeeded");
          expect(o.finish.status).toBe("fulfilled");
          expect(o.cancel).toMatchObject({ status: "fulfilled", value: { outcome: "finished", previous_status: "succeeded" } });
          expect(o.fence).toBe(o.start);
        }
      }
    });
  });
}

/** Start times of the slow tool, by idempotency key; whether each call's signal aborted. */
const toolLog = new Map<string, { startedAt: number; aborted: boolean }>();

const slowStep = defineTool({
  name: "slow_step",
  description: "Does one slow step of the work.",
  input: z.object({ n: z.number().int().optional() }),
  run: async (_input, ctx) => {
    const entry = { startedAt: Date.now(), aborted: false };
    toolLog.set(ctx.idempotencyKey, entry);
    ctx.signal.addEventListener("abort", () => (entry.aborted = true), { once: true });
    await sleep(1_500, undefined, { signal: ctx.signal }).catch(() => undefined);
    return { done: true };
  },
});

const slowWorker = defineAgent({
  name: "slow-worker",
  tools: ["slow_step"],
  tiers: { main: { model: "claude-haiku-4-5", max_tokens: 256 } },
  default_tier: "main",
  prompt: "Do the slow step, then say you are done.",
});

describe("cancel - POST /v1/tasks/{id}/cancel on an embedded node", () => {
  let sim: SimServer;
  let node: RunningNode;
  let base: string;
  let ops: Record<string, string>;
  let opsKeyId: string;
  const cancelledEvents: string[] = [];

  beforeAll(async () => {
    sim = await startSimServer({ latencyMs: 1_500 });
    node = await startNode({
      agents: [slowWorker],
      tools: [slowStep],
      userServices: false,
      port: 0,
      dataDir: "memory://",
      namespace: uniqueId("cancel"),
      logLevel: "error",
      env: { ANTHROPIC_BASE_URL: sim.url, CLAWFLEET_AUTH: "on", CLAWFLEET_ADMIN_KEY: TEST_ADMIN_KEY },
    });
    node.broker.createService({ name: "cancel-listener", events: { "clawfleet.task.cancelled": (ctx: { params: { task_id: string } }) => void cancelledEvents.push(ctx.params.task_id) } });
    base = `http://127.0.0.1:${node.port}`;
    const key = await issueTestKey(base, { scopes: ["submit", "read", "operate"] });
    ops = bearer(key);
    opsKeyId = key.split("_")[1] as string;
  }, 60_000);

  afterAll(async () => {
    await node?.stop();
    await sim?.close();
  });

  async function call(method: string, path: string, body?: unknown, headers = ops) {
    const r = await fetch(`${base}${path}`, { method, headers: { ...headers, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) }, ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}) });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> & { error?: { type: string; details?: Record<string, unknown> } } };
  }

  async function submit(): Promise<string> {
    const r = await call("POST", "/v1/tasks", { agent: "slow-worker", input: "go" });
    expect(r.status).toBe(202);
    return r.json.id as string;
  }

  it("cancel - mid model call: 202 cancelled, the request is aborted at the model, its input charged; nothing checkpointed; the event once", async () => {
    const id = await submit();
    await expect.poll(() => sim.requests().some((r) => r.user_id === id), { timeout: 20_000, interval: 20 }).toBe(true);

    const r = await call("POST", `/v1/tasks/${id}/cancel`, { reason: "changed my mind" });
    expect(r).toEqual({ status: 202, json: { id, status: "cancelled" } });
    await expect.poll(() => sim.requests().find((q) => q.user_id === id)?.aborted_at, { timeout: 10_000, interval: 20 }).toBeTypeOf("number");

    await expect.poll(async () => ((await call("GET", `/v1/tasks/${id}`)).json.usage as { input_tokens: number }).input_tokens, { timeout: 10_000 }).toBeGreaterThan(0);
    const view = (await call("GET", `/v1/tasks/${id}`)).json;
    expect(view).toMatchObject({ status: "cancelled", cancelled_by: opsKeyId, cancel_reason: "changed my mind", steps: 0 });
    expect(view.finished_at).toBeTypeOf("string");
    expect(((await call("GET", `/v1/tasks/${id}/steps`)).json.steps as unknown[]).length).toBe(0);
    await expect.poll(() => cancelledEvents.filter((t) => t === id).length, { timeout: 5_000 }).toBe(1);

    // Again: the same answer, and nothing more happens.
    expect(await call("POST", `/v1/tasks/${id}/cancel`)).toEqual({ status: 202, json: { id, status: "cancelled" } });
    await sleep(200);
    expect(cancelledEvents.filter((t) => t === id)).toHaveLength(1);
  }, 60_000);

  it("cancel - mid tool call: the tool is asked to stop, no step is written after the answer, and no model call follows", async () => {
    sim.reset();
    const id = await submit();
    await expect.poll(() => [...toolLog.keys()].some((k) => k.startsWith(id)), { timeout: 30_000, interval: 20 }).toBe(true);

    const r = await call("POST", `/v1/tasks/${id}/cancel`);
    const answeredAt = Date.now();
    expect(r.status).toBe(202);
    const key = [...toolLog.keys()].find((k) => k.startsWith(id)) as string;
    await expect.poll(() => toolLog.get(key)?.aborted, { timeout: 5_000 }).toBe(true);
    await sleep(2_000);

    const steps = (await call("GET", `/v1/tasks/${id}/steps`)).json.steps as Array<{ step: number; kind: string; created_at: string }>;
    expect(steps.map((s) => `${s.step}:${s.kind}`)).toEqual(["1:llm"]);
    for (const s of steps) expect(Date.parse(s.created_at)).toBeLessThan(answeredAt);
    expect(sim.requests().filter((q) => q.user_id === id)).toHaveLength(1);
    for (const [k, t] of toolLog) if (k.startsWith(id)) expect(t.startedAt).toBeLessThan(answeredAt);
    expect((await call("GET", `/v1/tasks/${id}`)).json).toMatchObject({ status: "cancelled", steps: 1 });
  }, 60_000);

  it("cancel - a finished task is 409 task_finished; unknown and malformed ids 404; a read-only key 403; a bad body 422 or 400", async () => {
    const stored = randomUUID();
    await node.broker.call("checkpoint.createTask", { task: { id: stored, agent: "slow-worker", input: "x", priority: "normal", metadata: {}, prompt_version: "pv" } });
    const claim = await node.broker.call<{ fence: number }, { id: string; owner: string }>("checkpoint.claimTask", { id: stored, owner: "elsewhere" });
    await node.broker.call("checkpoint.finishTask", { taskId: stored, fence: claim.fence, outcome: { status: "failed", error: { type: "x", message: "y" } } });

    const finished = await call("POST", `/v1/tasks/${stored}/cancel`);
    expect(finished.status).toBe(409);
    expect(finished.json.error).toMatchObject({ type: "task_finished", details: { status: "failed" } });
    expect((await call("POST", `/v1/tasks/${randomUUID()}/cancel`)).json.error?.type).toBe("task_not_found");
    expect((await call("POST", "/v1/tasks/not-a-task/cancel")).status).toBe(404);

    const reader = bearer(await issueTestKey(base, { scopes: ["read"] }));
    const forbidden = await call("POST", `/v1/tasks/${stored}/cancel`, undefined, reader);
    expect(forbidden.status).toBe(403);
    expect(forbidden.json.error).toMatchObject({ type: "forbidden", details: { scope: "operate" } });

    const queued = randomUUID();
    await node.broker.call("checkpoint.createTask", { task: { id: queued, agent: "slow-worker", input: "x", priority: "normal", metadata: {}, prompt_version: "pv" } });
    // Another tenant's operator: a 404 exactly like an unknown task's, and the task untouched.
    const stranger = bearer(await issueTestKey(base, { tenant: "someone-else", scopes: ["operate"] }));
    const theirs = await call("POST", `/v1/tasks/${queued}/cancel`, undefined, stranger);
    expect(theirs.status).toBe(404);
    const nobody = randomUUID();
    const unknown = await call("POST", `/v1/tasks/${nobody}/cancel`, undefined, stranger);
    expect(JSON.stringify(theirs.json).replaceAll(queued, "ID")).toBe(JSON.stringify(unknown.json).replaceAll(nobody, "ID"));
    const bad = await call("POST", `/v1/tasks/${queued}/cancel`, { reason: 42 });
    expect(bad.status).toBe(422);
    expect(bad.json.error).toMatchObject({ type: "validation_error", details: { field: "reason" } });
    expect((await call("POST", `/v1/tasks/${queued}/cancel`, "{not json")).status).toBe(400);
    expect((await call("GET", `/v1/tasks/${queued}`)).json.status).toBe("queued");
    expect((await call("POST", `/v1/tasks/${queued.toUpperCase()}/cancel`)).json).toEqual({ id: queued, status: "cancelled" });
  }, 60_000);
});
