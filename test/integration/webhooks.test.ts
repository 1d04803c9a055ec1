/**
 * webhooks - completion webhooks from the Postgres outbox, on PGlite and on a
 * real Postgres: the row comes with the write that ends the task (and only
 * with a committed one), claims are fenced attempts, a node delivers the end
 * signed and retries it with the same `webhook-id` and growing waits, every
 * attempt shows on the task, and a delivery loop that dies mid-attempt is
 * taken over from the outbox (at least once): in-process on both back ends,
 * and with a real SIGKILL of a real process on Postgres.
 *
 * Receivers live on 127.0.0.1, so the nodes run with
 * CLAWFLEET_WEBHOOK_ALLOW_PRIVATE=1; the guard itself is tested in
 * test/unit/ssrfGuard.test.ts.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { defineAgent } from "../../src/agent/definition";
import { loadConfig } from "../../src/config";
import { TaskViewSchema, WebhookPayloadSchema, type NewTask, type TaskView } from "../../src/contracts";
import type { PgTaskStore } from "../../src/store";
import { INTERRUPTED_ATTEMPT } from "../../src/store/webhooks";
import { secretKey, verifyWebhook, webhookParts, WebhookDispatcher, WebhookGuard } from "../../src/webhooks";
import { startNodeProcess, stopAll, type NodeProcess } from "../../testkit/cluster";
import { createTestDatabase, hasService, uniqueId, type TestDatabase } from "../helpers/services";
import { storeBackends, type OpenedBackend } from "../helpers/storeBackends";

const SECRET = `whsec_${Buffer.alloc(32, 0x5a).toString("base64")}`;
const KEY = secretKey(SECRET);
const quiet = { info: () => undefined, warn: () => undefined };

const backends = storeBackends({ max: 4 }).filter((b) => b.ready);

const newTask = (over: Partial<NewTask> = {}): NewTask => ({
  id: randomUUID(),
  agent: "notify",
  input: "say hi",
  priority: "normal",
  metadata: {},
  prompt_version: "pv-1",
  webhook: { url: "http://127.0.0.1:9/hook", secret_id: "default" },
  ...over,
});

/** Polls `probe` until it answers something other than undefined; the suite's timeouts bound the wait. */
async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Hit {
  at: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A webhook receiver on 127.0.0.1: records every request; `respond` decides each answer (by its index), `hold` never answers. */
async function receiver(respond: (n: number) => number | "hold") {
  const hits: Hit[] = [];
  const held: http.ServerResponse[] = [];
  const srv = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const n = hits.push({ at: Date.now(), headers: req.headers, body }) - 1;
      const answer = respond(n);
      if (answer === "hold") held.push(res);
      else res.writeHead(answer, { "content-type": "text/plain" }).end(`answer ${answer}`);
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  return {
    hits,
    url: `http://127.0.0.1:${port}/hooks/clawfleet?source=test`,
    close: () =>
      new Promise<void>((r) => {
        for (const res of held) res.destroy();
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

describe.each(backends)("webhooks - the outbox on $name", (backend) => {
  let db: OpenedBackend;
  let store: PgTaskStore;

  beforeAll(async () => {
    db = await backend.open();
    store = db.store;
  });
  afterAll(async () => {
    await db?.dispose();
  });

  const outbox = async (taskId: string) =>
    (await db.pool.query<{ id: string; type: string; payload: string; state: string }>("SELECT id, type, payload, state FROM webhook_deliveries WHERE task_id = $1 ORDER BY created_at", [taskId])).rows;

  async function ended(t: NewTask = newTask(), outcome: "succeeded" | "failed" = "succeeded"): Promise<string> {
    await store.createTask(t);
    const claim = await store.claimTask(t.id, "worker");
    if (!claim) throw new Error("claim failed");
    await store.appendStep(t.id, claim.fence, {
      kind: "llm",
      step: 1,
      data: { model: "m", tier: "default", stop_reason: "end_turn", usage: { input_tokens: 12, output_tokens: 7, cache_read_input_tokens: 3, cache_creation_input_tokens: 0, cost_usd: 0.0025 }, content: [{ type: "text", text: "hi" }], duration_ms: 5 },
    }, { input_tokens: 12, output_tokens: 7, cache_read_input_tokens: 3, cache_creation_input_tokens: 0, cost_usd: 0.0025 });
    const result = { answer: "hi", n: 1 };
    await store.finishTask(t.id, claim.fence, outcome === "succeeded" ? { status: "succeeded", result } : { status: "failed", error: { type: "tool_failed", message: "no" } });
    // A retried finish (the same write again) ends nothing anew.
    await store.finishTask(t.id, claim.fence, outcome === "succeeded" ? { status: "succeeded", result } : { status: "failed", error: { type: "tool_failed", message: "no" } });
    return t.id;
  }

  it("the write that ends a task adds one outbox row holding the documented payload; a task without a webhook adds none", async () => {
    const id = await ended();
    const rows = await outbox(id);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row).toMatchObject({ id: expect.stringMatching(/^msg_[0-9a-f]{32}$/), type: "task.succeeded", state: "pending" });
    const task = (await store.getTask(id))!;
    const payload = WebhookPayloadSchema.parse(JSON.parse(row.payload));
    expect(payload).toEqual({
      type: "task.succeeded",
      timestamp: task.finished_at,
      data: {
        id,
        tenant: "default",
        agent: "notify",
        status: "succeeded",
        result: { answer: "hi", n: 1 },
        error: null,
        usage: { input_tokens: 12, output_tokens: 7, cache_read_input_tokens: 3, cost_usd: 0.0025 },
        prompt_version: "pv-1",
        finished_at: task.finished_at,
      },
    });
    // The body reads in the documented order.
    expect(Object.keys(JSON.parse(row.payload) as object)).toEqual(["type", "timestamp", "data"]);
    const failed = await ended(newTask(), "failed");
    expect((await outbox(failed)).map((r) => [r.type, (JSON.parse(r.payload) as { data: { error: unknown } }).data.error])).toEqual([
      ["task.failed", { type: "tool_failed", message: "no" }],
    ]);
    const { webhook: _none, ...plain } = newTask();
    const without = await ended(plain);
    expect(await outbox(without)).toEqual([]);
  });

  it("any write that ends the task counts (a cancel), and one rolled back leaves no row", async () => {
    const t = newTask();
    await store.createTask(t);
    const client = await db.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = $1", [t.id]);
      expect((await client.query("SELECT count(*)::int AS n FROM webhook_deliveries WHERE task_id = $1", [t.id])).rows[0]).toEqual({ n: 1 });
      await client.query("ROLLBACK");
    } finally {
      client.release();
    }
    expect(await outbox(t.id)).toEqual([]);
    await db.pool.query("UPDATE tasks SET status = 'cancelled', finished_at = now() WHERE id = $1", [t.id]);
    expect((await outbox(t.id)).map((r) => r.type)).toEqual(["task.cancelled"]);
  });

  it("a claim is one numbered attempt; a held row is skipped; a stale claimant cannot move the state; a lapsed claim is recorded as interrupted", async () => {
    await db.pool.query("UPDATE webhook_deliveries SET state = 'failed'");
    const id = await ended();
    const [webhookId] = (await outbox(id)).map((r) => r.id);
    const [first, ...none] = await store.claimWebhooks("loop-a", 10, 60_000);
    expect(none).toEqual([]);
    expect(first).toMatchObject({ id: webhookId, task_id: id, tenant: "default", type: "task.succeeded", secret_id: "default", attempt: 1 });
    expect(await store.claimWebhooks("loop-b", 10, 60_000)).toEqual([]);
    const failedAttempt = { started_at: new Date().toISOString(), duration_ms: 12, status_code: 500, error: null, next: { state: "pending" as const, retry_in_ms: 0 } };
    expect(await store.recordWebhookAttempt(webhookId!, "loop-b", 1, failedAttempt)).toBe(false);
    expect(await store.recordWebhookAttempt(webhookId!, "loop-a", 1, failedAttempt)).toBe(true);

    // loop-b claims attempt 2 for 1 ms and never records it: it died.
    const [second] = await store.claimWebhooks("loop-b", 10, 1);
    expect(second?.attempt).toBe(2);
    const [third] = await until("the lapsed claim to be claimable", async () => {
      const c = await store.claimWebhooks("loop-c", 10, 60_000);
      return c.length > 0 ? c : undefined;
    });
    expect(third).toMatchObject({ id: webhookId, attempt: 3, payload: first?.payload });
    expect(await store.recordWebhookAttempt(webhookId!, "loop-c", 3, { ...failedAttempt, status_code: 200, next: { state: "delivered" } })).toBe(true);
    const view = await store.taskWebhook(id);
    expect(view).toMatchObject({ url: "http://127.0.0.1:9/hook", secret_id: "default", state: "delivered", webhook_id: webhookId, next_attempt_at: null });
    expect(view?.attempts.map((a) => [a.attempt, a.status_code, a.error, a.duration_ms])).toEqual([
      [1, 500, null, 12],
      [2, null, INTERRUPTED_ATTEMPT, null],
      [3, 200, null, 12],
    ]);
    // The tenant's view only: another tenant's task has none.
    expect(await store.taskWebhook(id, "someone-else")).toBeNull();
    expect(await store.taskWebhook(id, "default")).not.toBeNull();
  });

  it("loops claiming at once never get the same delivery", async () => {
    await db.pool.query("UPDATE webhook_deliveries SET state = 'failed'");
    const ids = await Promise.all(Array.from({ length: 12 }, () => ended()));
    const claims = await Promise.all([1, 2, 3].map((n) => store.claimWebhooks(`loop-${n}`, 6, 60_000)));
    const claimed = claims.flat().map((c) => c.task_id);
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(new Set(claimed)).toEqual(new Set(ids));
  });

  it("a loop that died mid-attempt leaves its claim to lapse; a live loop then delivers the same webhook-id, signed", async () => {
    await db.pool.query("UPDATE webhook_deliveries SET state = 'failed'");
    const hooks = await receiver(() => 204);
    try {
      const id = await ended(newTask({ webhook: { url: hooks.url, secret_id: "default" } }));
      const [dead] = await store.claimWebhooks("dead-node:webhooks", 10, 300);
      expect(dead?.task_id).toBe(id);
      const parts = webhookParts({ ...loadConfig({ CLAWFLEET_WEBHOOK_SECRETS: `default=${SECRET}` }).webhooks, allowPrivate: true, timeoutMs: 2_000 });
      const live = parts.dispatcher(store, "live-node:webhooks", quiet);
      // Its first turn finds the row still held by the dead loop.
      await live.tick();
      expect(hooks.hits).toHaveLength(0);
      await until("the delivery after the claim lapsed", async () => {
        await live.tick();
        return hooks.hits.length > 0 ? true : undefined;
      });
      await live.stop();
      expect(hooks.hits).toHaveLength(1);
      const hit = hooks.hits[0]!;
      expect(hit.headers["webhook-id"]).toBe(dead?.id);
      expect(hit.body).toBe(dead?.payload);
      expect(verifyWebhook(KEY, hit.headers as Record<string, string>, hit.body)).toEqual({ ok: true });
      const view = await store.taskWebhook(id);
      expect(view?.state).toBe("delivered");
      expect(view?.attempts.map((a) => [a.attempt, a.status_code, a.error])).toEqual([
        [1, null, INTERRUPTED_ATTEMPT],
        [2, 204, null],
      ]);
    } finally {
      await hooks.close();
    }
  });

  it("signs a tenant's event only with that tenant's own secret and names the tenant in the body; another tenant's secret of the same name never signs it", async () => {
    await db.pool.query("UPDATE webhook_deliveries SET state = 'failed'");
    const hooks = await receiver(() => 204);
    const ACME = `whsec_${Buffer.alloc(32, 0x41).toString("base64")}`;
    try {
      const acme = await ended(newTask({ tenant: "acme", webhook: { url: hooks.url, secret_id: "default" } }));
      const beta = await ended(newTask({ tenant: "beta", webhook: { url: hooks.url, secret_id: "default" } }));
      expect((await store.claimWebhooks("peek", 10, 1)).map((c) => [c.task_id, c.tenant]).sort()).toEqual([[acme, "acme"], [beta, "beta"]].sort());
      const parts = webhookParts({ ...loadConfig({ CLAWFLEET_WEBHOOK_SECRETS: `default=${SECRET} acme:default=${ACME}` }).webhooks, allowPrivate: true, timeoutMs: 2_000 });
      const loop = parts.dispatcher(store, "tenants:webhooks", quiet);
      await until("both tenants' attempts", async () => {
        await loop.tick();
        return hooks.hits.length > 0 && ((await store.taskWebhook(beta))?.attempts.length ?? 0) > 1 ? true : undefined;
      });
      await loop.stop();
      expect(hooks.hits).toHaveLength(1);
      const hit = hooks.hits[0]!;
      expect(verifyWebhook(secretKey(ACME), hit.headers as Record<string, string>, hit.body)).toEqual({ ok: true });
      expect(verifyWebhook(KEY, hit.headers as Record<string, string>, hit.body)).not.toEqual({ ok: true });
      expect(WebhookPayloadSchema.parse(JSON.parse(hit.body)).data).toMatchObject({ id: acme, tenant: "acme" });
      // beta has no secret of its own: the operator's `default` does not sign for it, and nothing is sent.
      expect((await store.taskWebhook(beta))?.attempts.at(-1)).toMatchObject({
        status_code: null,
        error: expect.stringMatching(/no webhook secret "default" is configured for the task's tenant/),
      });
    } finally {
      await hooks.close();
    }
  });

  it("checks the URL again before each attempt: one that now resolves to a private address is a failed attempt, nothing sent", async () => {
    await db.pool.query("UPDATE webhook_deliveries SET state = 'failed'");
    const id = await ended(newTask({ webhook: { url: "http://hooks.example.com/x", secret_id: "default" } }));
    const guard = new WebhookGuard({ allowPrivate: false, resolve: () => Promise.resolve([{ address: "10.1.2.3", family: 4 }]) });
    const sent: string[] = [];
    const loop = new WebhookDispatcher(
      {
        store,
        guard,
        secrets: { byId: { default: SECRET } },
        logger: quiet,
        send: (t) => {
          sent.push(t.address);
          return Promise.resolve({ delivered: true, statusCode: 200, error: null, durationMs: 1 });
        },
      },
      { owner: "guarded", pollMs: 1000, timeoutMs: 1000, connectTimeoutMs: 500, retry: { baseMs: 60_000, maxMs: 60_000, maxAttempts: 5, maxAgeMs: 86_400_000 } },
    );
    await loop.tick();
    expect(sent).toEqual([]);
    const view = await store.taskWebhook(id);
    expect(view).toMatchObject({ state: "pending", next_attempt_at: expect.any(String) });
    expect(view?.attempts).toEqual([
      expect.objectContaining({ attempt: 1, status_code: null, error: expect.stringMatching(/resolves to 10\.1\.2\.3, a private address/) }),
    ]);
  });
});

const notify = defineAgent({ name: "notify", tiers: { default: { model: "claude-haiku-5-5", max_tokens: 256 } }, default_tier: "default", prompt: "Answer in one short sentence." });

const WEBHOOK_ENV = {
  CLAWFLEET_WEBHOOK_SECRETS: `default=${SECRET} billing=whsec_${Buffer.alloc(24, 1).toString("base64")}`,
  CLAWFLEET_WEBHOOK_ALLOW_PRIVATE: "1",
  CLAWFLEET_WEBHOOK_POLL_MS: "25",
  CLAWFLEET_WEBHOOK_RETRY_BASE_MS: "300",
};

describe.each(backends)("webhooks - a node delivers a task's end, on $name", (backend) => {
  let db: OpenedBackend | undefined;
  let node: ClawfleetNode;
  let base: string;
  let promptsDir: string | undefined;

  beforeAll(async () => {
    promptsDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-webhooks-"));
    // Postgres: the node gets a database of its own; PGlite: in memory, inside the node.
    if (backend.name === "postgres") {
      db = await backend.open();
      await db.close();
    }
    const config = loadConfig({
      PORT: "0",
      CLAWFLEET_NAMESPACE: uniqueId("webhooks"),
      CLAWFLEET_PROMPTS_DIR: promptsDir,
      CLAWFLEET_USER_SERVICES: "none",
      LOG_LEVEL: "error",
      ...(db?.url !== undefined ? { DATABASE_URL: db.url } : { CLAWFLEET_DATA_DIR: "memory://" }),
      ...WEBHOOK_ENV,
    });
    node = await startNode(config, { agents: [notify] });
    base = `http://127.0.0.1:${node.port}`;
  }, 60_000);

  afterAll(async () => {
    await node?.stop();
    await db?.dispose().catch(() => undefined);
    if (promptsDir !== undefined) fs.rmSync(promptsDir, { recursive: true, force: true });
  });

  const submit = async (body: unknown) => {
    const r = await fetch(`${base}/v1/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return { status: r.status, json: (await r.json()) as { id?: string; error?: { type: string; message: string; details?: Record<string, unknown> } } };
  };
  const getTask = async (id: string) => {
    const r = await fetch(`${base}/v1/tasks/${id}`);
    return { text: await r.text(), status: r.status };
  };

  it("delivers the end signed, retries 500s with the same webhook-id and growing waits, and shows every attempt on the task", async () => {
    const hooks = await receiver((n) => (n < 2 ? 500 : 200));
    try {
      const submitted = await submit({ agent: "notify", input: "say hi", webhook: { url: hooks.url } });
      expect(submitted.status).toBe(202);
      const id = submitted.json.id!;
      await until("three deliveries", () => (hooks.hits.length >= 3 ? true : undefined));
      const task = await until("the task view to show the delivery", async () => {
        const v = TaskViewSchema.parse(JSON.parse((await getTask(id)).text));
        return v.webhook?.state === "delivered" ? v : undefined;
      });
      expect(hooks.hits).toHaveLength(3);

      // Exactly the signed payload, the same bytes and the same webhook-id on every attempt.
      const ids = new Set(hooks.hits.map((h) => h.headers["webhook-id"]));
      expect(ids.size).toBe(1);
      expect(new Set(hooks.hits.map((h) => h.body)).size).toBe(1);
      for (const h of hooks.hits) {
        expect(h.headers["content-type"]).toBe("application/json");
        expect(verifyWebhook(KEY, h.headers as Record<string, string>, h.body)).toEqual({ ok: true });
      }
      const payload = WebhookPayloadSchema.parse(JSON.parse(hooks.hits[0]!.body));
      expect(payload).toEqual({
        type: "task.succeeded",
        timestamp: task.finished_at,
        data: {
          id,
          tenant: "default",
          agent: "notify",
          status: "succeeded",
          result: task.result,
          error: null,
          usage: { input_tokens: task.usage.input_tokens, output_tokens: task.usage.output_tokens, cache_read_input_tokens: task.usage.cache_read_input_tokens, cost_usd: task.usage.cost_usd },
          prompt_version: task.prompt_version,
          finished_at: task.finished_at,
        },
      });

      // Waits of at least 300 ms, then 600 ms (CLAWFLEET_WEBHOOK_RETRY_BASE_MS=300, doubling).
      const gaps = hooks.hits.slice(1).map((h, i) => h.at - hooks.hits[i]!.at);
      expect(gaps[0]).toBeGreaterThanOrEqual(300);
      expect(gaps[1]).toBeGreaterThanOrEqual(600);

      expect(task.webhook).toMatchObject({ url: hooks.url, secret_id: "default", state: "delivered", webhook_id: [...ids][0], next_attempt_at: null });
      expect(task.webhook?.attempts.map((a) => [a.attempt, a.type, a.status_code, a.error])).toEqual([
        [1, "task.succeeded", 500, null],
        [2, "task.succeeded", 500, null],
        [3, "task.succeeded", 200, null],
      ]);
      const at = task.webhook!.attempts.map((a) => Date.parse(a.at));
      expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(300);
      expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(600);
      for (const a of task.webhook!.attempts) expect(a.duration_ms).toEqual(expect.any(Number));
      // No secret on the task, only its id.
      expect((await getTask(id)).text).not.toContain(SECRET.slice(6, 20));
    } finally {
      await hooks.close();
    }
  });

  it("signs with the secret the submit names", async () => {
    const hooks = await receiver(() => 200);
    try {
      const submitted = await submit({ agent: "notify", input: "say hi", webhook: { url: hooks.url, secret_id: "billing" } });
      expect(submitted.status).toBe(202);
      await until("the delivery", () => (hooks.hits.length >= 1 ? true : undefined));
      const h = hooks.hits[0]!;
      expect(verifyWebhook(KEY, h.headers as Record<string, string>, h.body).ok).toBe(false);
      expect(verifyWebhook(secretKey(`whsec_${Buffer.alloc(24, 1).toString("base64")}`), h.headers as Record<string, string>, h.body)).toEqual({ ok: true });
    } finally {
      await hooks.close();
    }
  });

  it.each([
    ["a metadata address", { url: "http://169.254.169.254/latest/meta-data/" }, "webhook_url_refused", "webhook.url", /cloud metadata/],
    ["an IPv4-mapped loopback", { url: "http://[::ffff:127.0.0.1]/" }, "webhook_url_refused", "webhook.url", /IPv4-mapped/],
    ["a scheme other than http(s)", { url: "file:///etc/passwd" }, "webhook_url_refused", "webhook.url", /not http or https/],
    ["credentials in the URL", { url: "http://a:b@127.0.0.1/" }, "webhook_url_refused", "webhook.url", /credentials/],
    ["an unknown secret", { url: "http://127.0.0.1:9/", secret_id: "nope" }, "validation_error", "webhook.secret_id", /no webhook secret "nope"/],
    ["an unknown field", { url: "http://127.0.0.1:9/", headers: {} }, "validation_error", undefined, /headers/],
  ])("refuses a webhook with %s (422) and stores nothing", async (_what, webhook, type, field, message) => {
    const before = (await node.resources.database()).store;
    const counted = await before.countByStatus();
    const r = await submit({ agent: "notify", input: "x", webhook });
    expect(r.status).toBe(422);
    expect(r.json.error?.type).toBe(type);
    expect(r.json.error?.message).toMatch(message);
    if (field !== undefined) expect(r.json.error?.details?.field).toBe(field);
    expect(await before.countByStatus()).toEqual(counted);
  });
});

describe.runIf(hasService("postgres"))("webhooks - a delivery loop killed mid-attempt (real process, SIGKILL)", () => {
  let db: TestDatabase;
  let proc: NodeProcess | undefined;
  let node: ClawfleetNode | undefined;
  let hooks: Awaited<ReturnType<typeof receiver>>;
  const namespace = uniqueId("webhookkill");
  const env = (databaseUrl: string) => ({ DATABASE_URL: databaseUrl, CLAWFLEET_NAMESPACE: namespace, ...WEBHOOK_ENV, CLAWFLEET_WEBHOOK_TIMEOUT_MS: "1500", CLAWFLEET_WEBHOOK_CONNECT_TIMEOUT_MS: "1000" });

  beforeAll(async () => {
    db = await createTestDatabase();
    // The first attempt is never answered: the process is killed while it waits.
    hooks = await receiver((n) => (n === 0 ? "hold" : 200));
  });
  afterAll(async () => {
    if (proc) await stopAll([proc], "SIGKILL");
    await node?.stop();
    await hooks?.close();
    await db?.drop();
  });

  it("another node takes the delivery over from the outbox and sends it again with the same webhook-id", async () => {
    proc = await startNodeProcess({ name: "webhooks-a", env: { ...env(db.url), LOG_LEVEL: "warn" } });
    const r = await fetch(`http://127.0.0.1:${proc.port}/v1/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent: "order-router", input: { order_id: "ORD-1001" }, webhook: { url: hooks.url } }),
    });
    expect(r.status).toBe(202);
    const { id } = (await r.json()) as { id: string };
    await until("the first attempt to arrive", () => (hooks.hits.length >= 1 ? true : undefined), 60_000);
    proc.kill("SIGKILL");
    expect(await proc.exited).toMatchObject({ signal: "SIGKILL" });

    const config = loadConfig({
      ...env(db.url),
      PORT: "0",
      CLAWFLEET_PROMPTS_DIR: path.resolve(__dirname, "../../examples/order-router/prompts"),
      CLAWFLEET_USER_SERVICES: "none",
      LOG_LEVEL: "error",
    });
    node = await startNode(config);
    await until("the delivery after the dead node's claim lapsed", () => (hooks.hits.length >= 2 ? true : undefined), 30_000);
    const [first, second] = hooks.hits;
    expect(second?.headers["webhook-id"]).toBe(first?.headers["webhook-id"]);
    expect(second?.body).toBe(first?.body);
    expect(verifyWebhook(KEY, second!.headers as Record<string, string>, second!.body)).toEqual({ ok: true });

    const view = await until("the task to show the delivery", async () => {
      const v = (await (await fetch(`http://127.0.0.1:${node!.port}/v1/tasks/${id}`)).json()) as TaskView;
      return v.webhook?.state === "delivered" ? v : undefined;
    });
    expect(view.webhook?.attempts.map((a) => [a.attempt, a.status_code, a.error])).toEqual([
      [1, null, INTERRUPTED_ATTEMPT],
      [2, 200, null],
    ]);
    expect(hooks.hits).toHaveLength(2);
  }, 120_000);
});
