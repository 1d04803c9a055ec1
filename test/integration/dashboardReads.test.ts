/**
 * dashboard reads - `GET /v1/queues` and `GET /v1/limits` on real nodes against the
 * simulated model: embedded (PGlite, the in-process queue, memory buckets: a planner
 * with one slot leaves wake-ups waiting) and distributed (Postgres, Redis Streams and
 * buckets, NATS: a node without a planner, and a second rate limiter in this process
 * sharing the node's Redis state, as another gateway of the cluster would).
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { loadConfig } from "../../src/config";
import type { LimitsView, ModelLimits, QueuesView } from "../../src/contracts";
import { RateLimiter, RedisBuckets, type RateLimitTable } from "../../src/ratelimit";
import { createRedis } from "../../src/redis/connection";
import { startSimServer, type SimServer } from "../../src/sim";
import { routes as orderRouterPolicies } from "../../examples/order-router/sim/policies";
import { bearer, issueTestKey, TEST_ADMIN_KEY } from "../../testkit/auth";
import { ORDER_ROUTER_PROMPTS, EXAMPLES_ENV } from "../../testkit/examples";
import { cleanRedis, createTestDatabase, hasService, NATS_TEST_URL, REDIS_TEST_URL, uniqueId, type TestDatabase } from "../helpers/services";

const HAIKU = "claude-haiku-5-5";
const SONNET = "claude-sonnet-5-5";
/** The sim's limits, reported in every answer's headers: what a gateway learns for a model it has no configuration for. */
const SIM_LIMITS = { requestsPerMinute: 100_000, inputTokensPerMinute: 100_000_000, outputTokensPerMinute: 20_000_000 };
const CONFIGURED: RateLimitTable = { [HAIKU]: { rpm: 5_000, itpm: 50_000_000, otpm: 10_000_000 } };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function getJson<T>(base: string, path: string, key?: string): Promise<T> {
  const r = await fetch(`${base}${path}`, { headers: key !== undefined ? bearer(key) : {} });
  const body = (await r.json()) as T;
  expect(r.status, `${path}: ${JSON.stringify(body)}`).toBe(200);
  return body;
}

async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (ok(last)) return last;
    await sleep(100);
  }
  throw new Error(`${what}: not reached; last ${JSON.stringify(last)}`);
}

function modelOf(view: LimitsView, model: string): ModelLimits {
  const row = view.models.find((m) => m.model === model);
  if (!row) throw new Error(`${model} is not listed: ${JSON.stringify(view.models.map((m) => m.model))}`);
  return row;
}

describe("dashboard reads - embedded (PGlite, in-process queue, memory buckets)", () => {
  let sim: SimServer;
  let node: ClawfleetNode;
  let base: string;

  beforeAll(async () => {
    // Slow answers keep the one planner slot busy long enough to see the others wait.
    sim = await startSimServer({ ...SIM_LIMITS, latencyMs: 300, policies: orderRouterPolicies });
    node = await startNode(
      loadConfig({
        ...EXAMPLES_ENV,
        PORT: "0",
        CLAWFLEET_DATA_DIR: "memory://",
        CLAWFLEET_NAMESPACE: uniqueId("dash"),
        ANTHROPIC_BASE_URL: sim.url,
        CLAWFLEET_PLANNER_SLOTS: "1",
        CLAWFLEET_RATE_LIMITS: JSON.stringify(CONFIGURED),
        LOG_LEVEL: "error",
      }),
    );
    base = `http://127.0.0.1:${node.port}`;
  }, 120_000);

  afterAll(async () => {
    await node?.stop();
    await sim?.close();
  }, 120_000);

  it("queues: wake-ups behind a busy planner wait and age, one is handed out; all drain to zero", async () => {
    const idle = await getJson<QueuesView>(base, "/v1/queues");
    expect(idle).toMatchObject({ queues: [{ channel: "tasks.ready", waiting: 0, pending: 0, lag_seconds: 0 }], tasks: { queued: 0, running: 0, awaiting_approval: 0 }, dead_letters: 0 });
    expect(Date.parse(idle.at)).toBeGreaterThan(Date.now() - 60_000);

    const before = await getJson<LimitsView>(base, "/v1/limits");
    const firstCallAt = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ agent: "order-router", input: { order_id: "ORD-1042" } }) });
      expect(r.status).toBe(202);
      ids.push(((await r.json()) as { id: string }).id);
    }
    const busy = await until(
      "a backlog behind the busy slot",
      () => getJson<QueuesView>(base, "/v1/queues"),
      (q) => (q.queues[0]?.pending ?? 0) === 1 && (q.queues[0]?.waiting ?? 0) >= 1 && (q.queues[0]?.lag_seconds ?? 0) > 0.05,
    );
    expect(busy.tasks.queued).toBeGreaterThanOrEqual(1);
    expect(busy.tasks.queued + busy.tasks.running).toBe(4);

    await until(
      "every task finished",
      async () => Promise.all(ids.map((id) => getJson<{ status: string }>(base, `/v1/tasks/${id}`))),
      (tasks) => tasks.every((t) => t.status === "succeeded"),
      120_000,
    );
    const drained = await until("the queue drained", () => getJson<QueuesView>(base, "/v1/queues"), (q) => q.queues[0]?.pending === 0);
    expect(drained).toMatchObject({ queues: [{ waiting: 0, pending: 0, lag_seconds: 0 }], tasks: { queued: 0, running: 0, awaiting_approval: 0 } });

    // limits: the calls those tasks made, through the gateway's limiter.
    expect(modelOf(before, HAIKU)).toMatchObject({ source: "configured", limits: { rpm: 5_000 }, used: { rpm: 0, itpm: 0, otpm: 0 }, headroom: { rpm: 1, itpm: 1, otpm: 1 } });
    expect(modelOf(before, SONNET)).toMatchObject({ source: "unknown", limits: { rpm: null, itpm: null, otpm: null }, headroom: { rpm: null } });
    const after = await getJson<LimitsView>(base, "/v1/limits");
    const sinceFirstCall = Date.now() - firstCallAt;
    expect(after.window_ms).toBe(60_000);
    const haiku = modelOf(after, HAIKU);
    expect(haiku.source).toBe("configured");
    // Configured, tightened by nothing the sim reported (its limits are higher).
    expect(haiku.limits).toEqual({ rpm: 5_000, itpm: 50_000_000, otpm: 10_000_000 });
    // The estimate is sliding (current window + the previous one × the share of it still
    // inside the last minute), so a call made before a window boundary counts at least
    // 1 − (time since it) / window: at least 4 calls, each at most sinceFirstCall old.
    expect(haiku.used.rpm).toBeGreaterThanOrEqual(4 * (1 - sinceFirstCall / 60_000) - 1e-9);
    expect(haiku.used.rpm).toBeGreaterThan(0);
    expect(haiku.used.itpm).toBeGreaterThan(0);
    expect(haiku.used.otpm).toBeGreaterThan(0);
    expect(haiku.headroom.rpm).toBeLessThan(1);
    expect(haiku.headroom.rpm).toBeCloseTo(1 - haiku.used.rpm / 5_000, 2);
    // Nothing configured: the sim's headers named its limits.
    const sonnet = modelOf(after, SONNET);
    expect(sonnet.source).toBe("learned");
    expect(sonnet.limits).toEqual({ rpm: SIM_LIMITS.requestsPerMinute, itpm: SIM_LIMITS.inputTokensPerMinute, otpm: SIM_LIMITS.outputTokensPerMinute });
    expect(sonnet.used.rpm).toBeGreaterThanOrEqual(1 - sinceFirstCall / 60_000 - 1e-9);
    expect(sonnet.headroom.rpm).toBeLessThan(1);
  }, 240_000);

  it("queues: a task that failed for good counts as a dead letter", async () => {
    const { store } = await node.resources.database();
    const id = randomUUID();
    await store.createTask({ id, agent: "order-router", input: "x", priority: "normal", metadata: {}, prompt_version: "pv", tenant: "someone" });
    const claim = await store.claimTask(id, "test");
    if (!claim) throw new Error("claim failed");
    expect((await getJson<QueuesView>(base, "/v1/queues")).tasks.running).toBe(1);
    await store.finishTask(id, claim.fence, { status: "failed", error: { type: "tool_error", message: "poison" } });
    expect(await getJson<QueuesView>(base, "/v1/queues")).toMatchObject({ tasks: { running: 0 }, dead_letters: 1 });
  });
});

describe.skipIf(!hasService("postgres") || !hasService("redis") || !hasService("nats"))("dashboard reads - distributed (Postgres, Redis, NATS)", () => {
  const namespace = uniqueId("dash");
  let db: TestDatabase;
  let sim: SimServer;
  let node: ClawfleetNode;
  let base: string;
  let operator = "";

  beforeAll(async () => {
    db = await createTestDatabase();
    sim = await startSimServer(SIM_LIMITS);
    // No planner: nothing consumes the wake-ups.
    node = await startNode(
      loadConfig({
        CLAWFLEET_PROMPTS_DIR: ORDER_ROUTER_PROMPTS,
        SERVICES: "api,intake,checkpoint,rate-gateway",
        TRANSPORTER: NATS_TEST_URL,
        REDIS_URL: REDIS_TEST_URL,
        DATABASE_URL: db.url,
        CLAWFLEET_NAMESPACE: namespace,
        CLAWFLEET_NODE_ID: `${namespace}-api`,
        ANTHROPIC_BASE_URL: sim.url,
        CLAWFLEET_RATE_LIMITS: JSON.stringify(CONFIGURED),
        CLAWFLEET_ADMIN_KEY: TEST_ADMIN_KEY,
        PORT: "0",
        LOG_LEVEL: "error",
      }),
    );
    base = `http://127.0.0.1:${node.port}`;
    operator = await issueTestKey(base, { tenant: "default", scopes: ["read"] });
  }, 120_000);

  afterAll(async () => {
    await node?.stop();
    await sim?.close();
    await db?.drop();
    await cleanRedis(REDIS_TEST_URL, namespace);
  }, 120_000);

  it("queues: wake-ups nobody consumes wait in the stream and age; their tasks stay queued", async () => {
    const submitter = await issueTestKey(base, { tenant: "acme", scopes: ["submit"] });
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json", ...bearer(submitter) }, body: JSON.stringify({ agent: "order-router", input: { order_id: `ORD-${i}` } }) });
      expect(r.status).toBe(202);
    }
    await sleep(1_100);
    const q = await getJson<QueuesView>(base, "/v1/queues", operator);
    expect(q.queues).toHaveLength(1);
    expect(q.queues[0]).toMatchObject({ channel: "tasks.ready", pending: 0 });
    expect(q.queues[0]?.waiting).toBeGreaterThanOrEqual(3);
    expect(q.queues[0]?.lag_seconds).toBeGreaterThanOrEqual(1);
    expect(q.tasks).toEqual({ queued: 3, running: 0, awaiting_approval: 0 });
    expect(q.dead_letters).toBe(0);
  }, 60_000);

  it("limits: calls of another gateway sharing the Redis state raise `used` and lower `headroom`; a learned limit shows as learned", async () => {
    const learnedModel = `claude-learned-${randomUUID().slice(0, 8)}`;
    const before = await getJson<LimitsView>(base, "/v1/limits", operator);
    expect(modelOf(before, HAIKU)).toMatchObject({ source: "configured", used: { rpm: 0 }, headroom: { rpm: 1 } });
    expect(modelOf(before, SONNET)).toMatchObject({ source: "unknown", limits: { rpm: null, itpm: null, otpm: null }, headroom: { rpm: null, itpm: null, otpm: null } });
    expect(before.models.map((m) => m.model)).not.toContain(learnedModel);

    const redis = createRedis(REDIS_TEST_URL, { name: `${namespace}-test` });
    const limiter = new RateLimiter(new RedisBuckets(redis, { prefix: namespace }), { limits: CONFIGURED, windowMs: 60_000, maxWaitMs: 5_000 });
    const call = (model: string) => ({ model, tier: "classify", priority: "normal" as const, maxTokens: 200, system: "s", messages: [{ role: "user" as const, content: "route ORD-1" }], tools: [] });
    const usage = { input_tokens: 120, output_tokens: 30, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
    try {
      for (let i = 0; i < 10; i++) await (await limiter.acquire(call(HAIKU))).settle(usage);
      await (await limiter.acquire(call(learnedModel))).settle(usage, { requestsLimit: 600, inputTokensLimit: 60_000, outputTokensLimit: 12_000 });
    } finally {
      redis.disconnect();
    }

    const after = await until("the usage recorded", () => getJson<LimitsView>(base, "/v1/limits", operator), (v) => modelOf(v, HAIKU).used.otpm >= 299);
    const haiku = modelOf(after, HAIKU);
    expect(haiku.used.rpm).toBeCloseTo(10, 1);
    expect(haiku.used.itpm).toBeCloseTo(1_200, 0);
    // Settled to the 30 tokens each call wrote, not the 200 it reserved.
    expect(haiku.used.otpm).toBeCloseTo(300, 0);
    expect(haiku.headroom.rpm).toBeCloseTo(1 - 10 / 5_000, 3);
    expect(haiku.headroom.rpm).toBeLessThan(1);
    const learned = modelOf(after, learnedModel);
    expect(learned).toMatchObject({ source: "learned", limits: { rpm: 600, itpm: 60_000, otpm: 12_000 } });
    expect(learned.used.rpm).toBeCloseTo(1, 1);
    expect(learned.headroom.rpm).toBeCloseTo(1 - 1 / 600, 3);
  }, 60_000);
});
