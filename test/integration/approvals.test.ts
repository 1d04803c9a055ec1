/**
 * approvals - the store's side of approval gates on PGlite (always) and a real
 * Postgres (a fresh database per run): the park is fenced, a decision is
 * recorded exactly once however many race, a decision racing a cancel or a
 * timeout leaves one consistent outcome, and the pending list and the timeouts
 * read only what they should. Then the REST routes of a real node, with the
 * official SDK against the simulated model.
 */
import { randomUUID } from "node:crypto";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { ServiceBroker } from "moleculer";
import { startNode, type ClawfleetNode } from "../../app/node";
import { loadConfig } from "../../src/config";
import {
  ApprovalDecidedEventSchema,
  ApprovalDecidedSchema,
  emptyUsage,
  ErrorBodySchema,
  PendingApprovalsSchema,
  TaskAwaitingApprovalEventSchema,
  type ApprovalRequest,
} from "../../src/contracts";
import { StaleFenceError } from "../../src/errors";
import { offersTools, pastToolCalls, startSimServer, textTurn, toolTurn, type PolicyRoute, type SimServer } from "../../src/sim";
import type { PgTaskStore } from "../../src/store";
import { defineTool } from "../../src/tools/define";
import { bearer, issueTestKey, TEST_ADMIN_KEY } from "../../testkit/auth";
import { ROOT } from "../../testkit/cluster";
import { uniqueId } from "../helpers/services";
import { storeBackends, type OpenedBackend } from "../helpers/storeBackends";

// Room for the racing decisions to run at once, each on a connection of its own.
const backends = storeBackends({ max: 14 });

const CHARGE = { order_id: "ORD-7", amount: 1250 };
const request = (over: Partial<ApprovalRequest> = {}): ApprovalRequest => ({ step: 2, tool_use_id: "tu_charge", tool: "charge_card", input: CHARGE, timeout_seconds: 600, ...over });

describe.each(backends)("approvals - store on $name", (backend) => {
  let opened: OpenedBackend;
  let store: PgTaskStore;

  beforeAll(async () => {
    if (!backend.ready) return;
    opened = await backend.open();
    store = opened.store;
  }, 60_000);

  afterAll(async () => {
    await opened?.dispose();
  });

  const skip = () => !backend.ready;

  /** A task claimed and parked on its call, as a planner parks one; answers its id and the parking fence. */
  async function parked(opts: { tenant?: string; timeout?: number } = {}): Promise<{ id: string; fence: number }> {
    const id = randomUUID();
    await store.createTask({ id, agent: "payments", input: "charge", priority: "normal", metadata: {}, prompt_version: "pv", ...(opts.tenant ? { tenant: opts.tenant } : {}) });
    const claim = await store.claimTask(id, "planner-a");
    if (!claim) throw new Error("claim failed");
    const content = [{ type: "tool_use" as const, id: "tu_charge", name: "charge_card", input: CHARGE }];
    await store.appendStep(id, claim.fence, { kind: "llm", step: 1, data: { model: "m", tier: "main", stop_reason: "tool_use", usage: emptyUsage(), content, duration_ms: 1 } });
    await store.awaitApproval(id, claim.fence, request({ timeout_seconds: opts.timeout ?? 600 }));
    return { id, fence: claim.fence };
  }

  it.skipIf(skip())("the park is fenced; parking again changes nothing, its deadline included", async () => {
    const { id, fence } = await parked();
    expect(await store.getTask(id)).toMatchObject({ status: "awaiting_approval", attempts: 0 });
    const first = await store.approvalOf(id, 2);
    expect(first).toMatchObject({ task_id: id, step: 2, tool_use_id: "tu_charge", tool: "charge_card", input: CHARGE, decision: null, reason: null, decided_by: null, decided_at: null });
    expect(Date.parse(first?.deadline ?? "") - Date.parse(first?.requested_at ?? "")).toBe(600_000);

    // A retried write of the same park: a no-op, and the pending call keeps its first deadline.
    await store.awaitApproval(id, fence, request({ timeout_seconds: 5 }));
    expect(await store.approvalOf(id, 2)).toEqual(first);
    await expect(store.awaitApproval(id, fence - 1, request())).rejects.toBeInstanceOf(StaleFenceError);

    // Another task, claimed twice: the first holder's park is refused, and nothing is recorded.
    const other = randomUUID();
    await store.createTask({ id: other, agent: "payments", input: "x", priority: "normal", metadata: {}, prompt_version: "pv" });
    const zombie = await store.claimTask(other, "planner-a");
    const successor = await store.claimTask(other, "planner-b");
    await expect(store.awaitApproval(other, zombie?.fence ?? -1, request())).rejects.toBeInstanceOf(StaleFenceError);
    expect(await store.getTask(other)).toMatchObject({ status: "running", fence: successor?.fence });
    expect(await store.approvalOf(other, 2)).toBeNull();
    // Not claimable while it waits.
    expect(await store.claimTask(id, "planner-b")).toBeNull();
  });

  /**
   * Holds the call's row locked until `waiters` sessions wait on a lock, then lets them go: every racer is then
   * under way before the first can commit. Postgres only (PGlite runs one session).
   */
  async function holdCall(id: string): Promise<(waiters: number) => Promise<void>> {
    const client = await opened.pool.connect();
    await client.query("BEGIN");
    await client.query("SELECT 1 FROM approvals WHERE task_id = $1 FOR UPDATE", [id]);
    const waiting = async () =>
      (await opened.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0]?.n;
    return async (waiters) => {
      try {
        await expect.poll(waiting, { timeout: 20_000 }).toBe(waiters);
      } finally {
        await client.query("COMMIT");
        client.release();
      }
    };
  }

  it.skipIf(skip())("ten decisions at once: exactly one is recorded, the other nine are told it was decided", async () => {
    const { id } = await parked();
    const release = backend.name === "postgres" ? await holdCall(id) : undefined;
    const racing = Promise.all(
      Array.from({ length: 10 }, (_, i) => store.decideApproval(id, { decision: i % 2 === 0 ? "approve" : "reject", by: `key-${i}`, reason: `r${i}` })),
    );
    await release?.(10);
    const results = await racing;
    const recorded = results.filter((r) => r.outcome === "recorded");
    expect(recorded).toHaveLength(1);
    expect(results.filter((r) => r.outcome === "already_decided")).toHaveLength(9);
    const winner = recorded[0]?.approval;
    expect(await store.approvalOf(id, 2)).toEqual(winner);
    for (const r of results) expect(r.approval?.decided_by).toBe(winner?.decided_by);
    expect(await store.getTask(id)).toMatchObject({ status: "queued", attempts: 0 });
    expect(recorded[0]).toMatchObject({ status: "queued", tenant: "default" });
  });

  it.skipIf(skip())("a decision racing a cancel: whichever commits first wins, and the other is told", async () => {
    for (let round = 0; round < 5; round++) {
      const { id } = await parked();
      const [decided, cancelled] = await Promise.all([store.decideApproval(id, { decision: "approve", by: "key-ops" }), store.cancelTask(id, undefined, "key-other")]);
      expect(cancelled.outcome).toBe("cancelled");
      expect(await store.getTask(id)).toMatchObject({ status: "cancelled" });
      if (decided.outcome === "recorded") {
        // The decision came first: the cancel then ended the queued task, before any planner could run the call.
        expect(cancelled.previous_status).toBe("queued");
      } else {
        expect(decided).toMatchObject({ outcome: "not_awaiting", status: "cancelled" });
        expect(cancelled.previous_status).toBe("awaiting_approval");
        expect(await store.approvalOf(id, 2)).toMatchObject({ decision: null });
      }
      expect((await store.listApprovals(1000)).map((a) => a.task_id)).not.toContain(id);
    }
  });

  it.skipIf(skip())("a decision racing the timeout of a call past its deadline: the call is never approved", async () => {
    for (let round = 0; round < 3; round++) {
      const { id } = await parked({ timeout: 0 });
      const [decided] = await Promise.all([store.decideApproval(id, { decision: "approve", by: "key-late" }), store.expireApprovals(100)]);
      expect(["expired", "not_awaiting"]).toContain(decided.outcome);
      // A sweep skips a task whose row a decision holds locked: the next sweep times it out.
      await store.expireApprovals(100);
      const task = await store.getTask(id);
      expect(task).toMatchObject({ status: "failed", error: { type: "approval_timeout" } });
      expect(await store.approvalOf(id, 2)).toMatchObject({ decision: "timeout", decided_by: "timeout" });
      // Once it timed out, a decision is refused as "waiting on nothing", and it is dead-lettered.
      expect(await store.decideApproval(id, { decision: "approve", by: "key-late" })).toMatchObject({ outcome: "not_awaiting", status: "failed" });
      expect((await store.listDeadLetters(1000)).some((d) => d.task_id === id && d.error.type === "approval_timeout")).toBe(true);
    }
  });

  it.skipIf(skip())("the pending list: tasks still waiting, oldest request first, by tenant, bounded", async () => {
    const tenant = uniqueId("acme");
    const a = await parked({ tenant });
    const b = await parked({ tenant });
    const c = await parked({ tenant });
    await store.cancelTask(c.id, undefined, "k");
    const decided = await parked({ tenant });
    await store.decideApproval(decided.id, { decision: "reject", by: "k" });
    const listed = await store.listApprovals(100, tenant);
    expect(listed.map((p) => p.task_id)).toEqual([a.id, b.id]);
    expect(listed[0]).toMatchObject({ agent: "payments", prompt_version: "pv", tenant, step: 2, tool: "charge_card", input: CHARGE, decision: null });
    expect((await store.listApprovals(1, tenant)).map((p) => p.task_id)).toEqual([a.id]);
    expect(await store.listApprovals(100, uniqueId("nobody"))).toEqual([]);
    expect((await store.listApprovals(1000)).map((p) => p.task_id)).toEqual(expect.arrayContaining([a.id, b.id]));
  });

  it.skipIf(skip())("timeouts: only calls past their deadline, a batch at a time; an unknown or malformed task is simply none", async () => {
    const live = await parked();
    const due = [await parked({ timeout: 0 }), await parked({ timeout: 0 }), await parked({ timeout: 0 })];
    const firstBatch = await store.expireApprovals(2);
    expect(firstBatch).toHaveLength(2);
    const rest = await store.expireApprovals(100);
    const expired = [...firstBatch, ...rest].map((e) => e.task.id);
    expect(expired).toEqual(expect.arrayContaining(due.map((d) => d.id)));
    expect(expired).not.toContain(live.id);
    for (const e of firstBatch) expect(e).toMatchObject({ task: { status: "failed", error: { type: "approval_timeout" } }, approval: { decision: "timeout", step: 2 } });
    expect(await store.getTask(live.id)).toMatchObject({ status: "awaiting_approval" });
    expect(await store.decideApproval(randomUUID(), { decision: "approve", by: "k" })).toMatchObject({ outcome: "not_found" });
    expect(await store.decideApproval("nope", { decision: "approve", by: "k" })).toMatchObject({ outcome: "not_found" });
    expect(await store.approvalOf("nope", 2)).toBeNull();
  });
});

// ------------------------------------------------------------------ REST, on a real node

const PROMPTS = path.join(ROOT, "test", "fixtures", "prompts", "approvals");

/** The model: charge the order once; a refused charge is reported, never tried again. */
const chargeRoute: PolicyRoute = {
  name: "payments-approval",
  matches: (req) => offersTools(req, ["charge_card"]),
  policy: (req) => {
    const last = pastToolCalls(req.messages).at(-1);
    if (!last) return toolTurn(req, "Charging the order.", [{ name: "charge_card", input: CHARGE }]);
    if (last.result?.isError === true) return textTurn(`Not charged: ${last.result.text}`);
    return textTurn(`Charged: ${last.result?.text ?? ""}`);
  },
};

describe("approvals - REST on a real node", () => {
  let sim: SimServer;
  let node: ClawfleetNode;
  let base: string;
  const keys = { ops: "", reader: "", other: "" };
  const charges: Array<{ key: string; input: unknown }> = [];
  const heard: Array<{ name: string; payload: unknown }> = [];

  const call = async (method: string, url: string, key: string, body?: unknown) => {
    const r = await fetch(`${base}${url}`, {
      method,
      headers: { ...bearer(key), ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json: unknown = await r.json();
    return { status: r.status, body: json };
  };

  async function submit(): Promise<string> {
    const r = await call("POST", "/v1/tasks", keys.ops, { agent: "payments-approval", input: { order_id: "ORD-7" } });
    expect(r.status).toBe(202);
    return (r.body as { id: string }).id;
  }

  const statusOf = async (id: string) => ((await call("GET", `/v1/tasks/${id}`, keys.ops)).body as { status: string }).status;

  beforeAll(async () => {
    sim = await startSimServer({ policies: [chargeRoute] });
    const chargeCard = defineTool({
      name: "charge_card",
      description: "Charges the customer's card for an order.",
      input: z.object({ order_id: z.string(), amount: z.number().int() }),
      sideEffect: true,
      run: async (input, ctx) => {
        charges.push({ key: ctx.idempotencyKey, input });
        return { charge_id: `CH-${ctx.idempotencyKey}` };
      },
    });
    node = await startNode(
      loadConfig({
        PORT: "0",
        CLAWFLEET_DATA_DIR: "memory://",
        CLAWFLEET_NAMESPACE: uniqueId("approvals"),
        CLAWFLEET_PROMPTS_DIR: PROMPTS,
        CLAWFLEET_AUTH: "on",
        CLAWFLEET_ADMIN_KEY: TEST_ADMIN_KEY,
        ANTHROPIC_BASE_URL: sim.url,
        LOG_LEVEL: "error",
      }),
      { tools: [chargeCard] },
    );
    const broker: ServiceBroker = node.broker;
    broker.createService({
      name: "approval-listener",
      events: {
        "clawfleet.control.approval_decided"(ctx: { params: unknown }) {
          heard.push({ name: "clawfleet.control.approval_decided", payload: ctx.params });
        },
        "clawfleet.task.awaiting_approval"(ctx: { params: unknown }) {
          heard.push({ name: "clawfleet.task.awaiting_approval", payload: ctx.params });
        },
      },
    });
    await broker.waitForServices(["approval-listener"]);
    base = `http://127.0.0.1:${node.port}`;
    keys.ops = await issueTestKey(base, { tenant: "shop" });
    keys.reader = await issueTestKey(base, { tenant: "shop", scopes: ["read"] });
    keys.other = await issueTestKey(base, { tenant: "elsewhere" });
  }, 90_000);

  afterAll(async () => {
    await node?.stop();
    await sim?.close();
  });

  it("lists the waiting call; two decisions at once: one 200, one 409; the approved charge runs once with no new model call", async () => {
    const id = await submit();
    await expect.poll(() => statusOf(id), { timeout: 20_000 }).toBe("awaiting_approval");

    const listed = await call("GET", "/v1/approvals?status=pending", keys.reader);
    expect(listed.status).toBe(200);
    const pending = PendingApprovalsSchema.parse(listed.body).approvals.find((a) => a.task_id === id);
    expect(pending).toMatchObject({ agent: "payments-approval", step: 2, tool_use: { name: "charge_card", input: CHARGE } });
    expect(pending?.tool_use.id).toMatch(/^toolu_/);
    expect((await call("GET", "/v1/approvals", keys.other)).body).toEqual({ approvals: [] });
    await expect.poll(() => heard.filter((h) => h.name === "clawfleet.task.awaiting_approval").length).toBe(1);
    expect(TaskAwaitingApprovalEventSchema.parse(heard[0]?.payload)).toMatchObject({ task_id: id, tenant: "shop", tool: "charge_card", tool_input: CHARGE });
    expect(charges).toEqual([]);

    const [a, b] = await Promise.all([
      call("POST", `/v1/tasks/${id}/approval`, keys.ops, { decision: "approve", reason: "customer called" }),
      call("POST", `/v1/tasks/${id}/approval`, keys.ops, { decision: "reject" }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const [ok, refused] = a.status === 200 ? [a, b] : [b, a];
    const decision = ApprovalDecidedSchema.parse(ok.body);
    expect(decision).toMatchObject({ task_id: id, status: "queued" });
    expect(ErrorBodySchema.parse(refused.body).error).toMatchObject({ type: "approval_decided", details: { decision: decision.decision } });

    await expect.poll(() => statusOf(id), { timeout: 20_000 }).toBe("succeeded");
    await expect.poll(() => heard.filter((h) => h.name === "clawfleet.control.approval_decided").length).toBe(1);
    const event = ApprovalDecidedEventSchema.parse(heard.find((h) => h.name === "clawfleet.control.approval_decided")?.payload);
    expect(event).toMatchObject({ task_id: id, tenant: "shop", decision: decision.decision, tool: "charge_card", step: 2 });
    expect(event.by).toMatch(/^[0-9a-f]{16}$/);

    const steps = (await call("GET", `/v1/tasks/${id}/steps`, keys.ops)).body as { steps: Array<{ kind: string; tool?: string; ok?: boolean; output?: unknown }> };
    const requests = sim.requests().filter((r) => r.user_id === id);
    // The model was asked twice in all: the turn that asked for the charge, and the one after its result.
    expect(requests).toHaveLength(2);
    if (decision.decision === "approve") {
      expect(charges.filter((c) => c.key === `${id}:2`)).toEqual([{ key: `${id}:2`, input: CHARGE }]);
      expect(steps.steps.map((s) => (s.kind === "tool" ? `${s.tool}:${s.ok}` : s.kind))).toEqual(["llm", "charge_card:true", "llm"]);
    } else {
      expect(charges.filter((c) => c.key.startsWith(id))).toEqual([]);
      expect(steps.steps[1]).toMatchObject({ tool: "charge_card", ok: false, output: "rejected by an operator" });
    }
    // Decided once, for good.
    expect((await call("POST", `/v1/tasks/${id}/approval`, keys.ops, { decision: "approve" })).status).toBe(409);
  });

  it("reject: the model is told the reason and the charge is never made", async () => {
    const id = await submit();
    await expect.poll(() => statusOf(id), { timeout: 20_000 }).toBe("awaiting_approval");
    const r = await call("POST", `/v1/tasks/${id}/approval`, keys.ops, { decision: "reject", reason: "card reported stolen" });
    expect(r).toEqual({ status: 200, body: { task_id: id, decision: "reject", status: "queued" } });
    await expect.poll(() => statusOf(id), { timeout: 20_000 }).toBe("succeeded");
    const task = (await call("GET", `/v1/tasks/${id}`, keys.ops)).body as { result: { text: string } };
    expect(task.result.text).toBe("Not charged: rejected by an operator: card reported stolen");
    expect(charges.filter((c) => c.key.startsWith(id))).toEqual([]);
  });

  it("refusals: another tenant's task is 404, a read key 403, a bad body 422, a task waiting on nothing 409", async () => {
    const id = await submit();
    await expect.poll(() => statusOf(id), { timeout: 20_000 }).toBe("awaiting_approval");
    expect((await call("POST", `/v1/tasks/${id}/approval`, keys.other, { decision: "approve" })).status).toBe(404);
    expect((await call("POST", `/v1/tasks/${randomUUID()}/approval`, keys.ops, { decision: "approve" })).status).toBe(404);
    expect((await call("POST", `/v1/tasks/${id}/approval`, keys.reader, { decision: "approve" })).status).toBe(403);
    const bad = await call("POST", `/v1/tasks/${id}/approval`, keys.ops, { decision: "yes" });
    expect(bad.status).toBe(422);
    expect(ErrorBodySchema.parse(bad.body).error).toMatchObject({ type: "validation_error", details: { field: "decision" } });
    expect((await call("POST", `/v1/tasks/${id}/approval`, keys.ops, ["approve"])).status).toBe(422);
    expect((await call("GET", "/v1/approvals?status=all", keys.ops)).status).toBe(422);

    // Cancelled while it waits: it leaves the list, and a decision is refused.
    expect((await call("POST", `/v1/tasks/${id}/cancel`, keys.ops, {})).status).toBe(202);
    const gone = PendingApprovalsSchema.parse((await call("GET", "/v1/approvals", keys.ops)).body);
    expect(gone.approvals.map((a) => a.task_id)).not.toContain(id);
    const late = await call("POST", `/v1/tasks/${id}/approval`, keys.ops, { decision: "approve" });
    expect(late.status).toBe(409);
    expect(ErrorBodySchema.parse(late.body).error).toMatchObject({ type: "not_awaiting_approval", details: { status: "cancelled" } });
    expect(charges.filter((c) => c.key.startsWith(id))).toEqual([]);
  });
});
