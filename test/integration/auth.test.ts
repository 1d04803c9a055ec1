/**
 * auth - API keys, scopes and tenants on a real node (its own Postgres
 * database, authentication on): the bootstrap admin key, 401 and 403, rotation
 * with overlap, revocation, keys kept hashed, and a walk of every /v1 route
 * with one tenant's key over another tenant's ids.
 */
import { createHash, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { V1_ROUTES } from "../../src/api/routes";
import { loadConfig } from "../../src/config";
import type { CreatedKey, Scope } from "../../src/contracts";
import { openStore, type OpenedStore } from "../../src/store/pgTaskStore";
import { ORDER_ROUTER_PROMPTS } from "../../testkit/examples";
import { createTestDatabase, hasService, uniqueId, type TestDatabase } from "../helpers/services";

const ADMIN_SECRET = `admin-${randomUUID()}-${randomUUID()}`;

let db: TestDatabase;
let node: ClawfleetNode;
let store: OpenedStore;
let base: string;

interface Answer {
  status: number;
  json: Record<string, unknown> & { error?: { type: string; message: string } };
  headers: Headers;
}

async function call(method: string, path: string, key: string | undefined, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(key !== undefined ? { Authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  return { status: r.status, json: text ? (JSON.parse(text) as Answer["json"]) : {}, headers: r.headers };
}

async function newKey(tenant: string, scopes: Scope[], extra: Record<string, unknown> = {}, admin = ADMIN_SECRET): Promise<CreatedKey> {
  const r = await call("POST", "/v1/keys", admin, { tenant, scopes, ...extra });
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  return r.json as unknown as CreatedKey;
}

/** A task of `tenant` that failed for good: the store's own path (claim, then a failed finish) dead-letters it. */
async function failedTask(tenant: string): Promise<string> {
  const id = randomUUID();
  await store.store.createTask({ id, agent: "order-router", input: { order_id: "ORD-9" }, priority: "normal", metadata: {}, prompt_version: "pv", tenant });
  const claim = await store.store.claimTask(id, "test");
  if (!claim) throw new Error("claim failed");
  await store.store.finishTask(id, claim.fence, { status: "failed", error: { type: "tool_error", message: "poison" } });
  return id;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!hasService("postgres"))("auth - keys, scopes and tenants (Postgres)", () => {
  beforeAll(async () => {
    db = await createTestDatabase();
    node = await startNode(
      loadConfig({
        CLAWFLEET_PROMPTS_DIR: ORDER_ROUTER_PROMPTS,
        PORT: "0",
        DATABASE_URL: db.url,
        CLAWFLEET_NAMESPACE: uniqueId("auth"),
        CLAWFLEET_AUTH: "on",
        CLAWFLEET_ADMIN_KEY: ADMIN_SECRET,
        LOG_LEVEL: "error",
      }),
    );
    base = `http://127.0.0.1:${node.port}`;
    store = await openStore({ databaseUrl: db.url, max: 2 });
  }, 60_000);

  afterAll(async () => {
    await node?.stop();
    await store?.close();
    await db?.drop();
  });

  it("the bootstrap admin key creates keys and can do nothing else (403 submit)", async () => {
    const k = await newKey("acme", ["submit", "read"]);
    expect(k.key).toMatch(/^cfk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(k).toMatchObject({ tenant: "acme", scopes: ["submit", "read"], expires_at: null, revoked_at: null });
    const submit = await call("POST", "/v1/tasks", ADMIN_SECRET, { agent: "order-router", input: { order_id: "ORD-1" } });
    expect(submit.status).toBe(403);
    expect(submit.json.error?.type).toBe("forbidden");
  });

  it("answers 401 with WWW-Authenticate: Bearer for a missing, malformed, unknown or wrong key", async () => {
    const real = await newKey("acme", ["read"]);
    const wrongSecret = `${real.key.slice(0, 21)}${"A".repeat(43)}`;
    const unknownId = `cfk_${"0".repeat(16)}_${real.key.slice(21)}`;
    for (const header of [undefined, "garbage", ADMIN_SECRET.slice(1), wrongSecret, unknownId]) {
      const r = await call("GET", "/v1/dead-letters", header);
      expect(r.status, String(header)).toBe(401);
      expect(r.json.error?.type).toBe("unauthenticated");
      expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    const basic = await fetch(`${base}/v1/dead-letters`, { headers: { Authorization: `Basic ${Buffer.from("a:b").toString("base64")}` } });
    expect(basic.status).toBe(401);
    expect((await call("GET", "/v1/dead-letters", real.key)).status).toBe(200);
  });

  it("answers 403 naming the scope when a valid key lacks it", async () => {
    const reader = await newKey("acme", ["read"]);
    const r = await call("POST", "/v1/tasks", reader.key, { agent: "order-router", input: { order_id: "ORD-1" } });
    expect(r.status).toBe(403);
    expect(r.json.error).toMatchObject({ type: "forbidden", details: { scope: "submit" } });
    expect((await call("GET", "/v1/keys", reader.key)).status).toBe(403);
    expect((await call("POST", `/v1/tasks/${randomUUID()}/redrive`, reader.key)).status).toBe(403);
  });

  it("the dashboard's reads answer 401 without a key, 403 to another tenant's read key, 200 to the operator tenant's", async () => {
    const tenantReader = await newKey("acme", ["read"]);
    const operatorReader = await newKey("default", ["read"]);
    for (const path of ["/v1/queues", "/v1/limits"]) {
      expect((await call("GET", path, undefined)).status, path).toBe(401);
      const refused = await call("GET", path, tenantReader.key);
      expect(refused.status, path).toBe(403);
      expect(refused.json.error?.type).toBe("forbidden");
      expect((await call("GET", path, operatorReader.key)).status, path).toBe(200);
    }
  });

  it("keeps health and metrics open and tenant-free", async () => {
    expect((await fetch(`${base}/health/live`)).status).toBe(200);
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).not.toMatch(/tenant/i);
  });

  it("a key of tenant B over tenant A's ids: every /v1 route answers 404 (403 where the scope is missing), never A's data", async () => {
    const a = await newKey("tenant-a", ["submit", "read", "operate", "admin"]);
    const bOps = await newKey("tenant-b", ["submit", "read", "operate"]);
    const bAdmin = await newKey("tenant-b", ["submit", "read", "operate", "admin"]);
    const idemKey = `order-${randomUUID()}`;
    const submitted = await call("POST", "/v1/tasks", a.key, { agent: "order-router", input: { order_id: "ORD-1" } }, { "Idempotency-Key": idemKey });
    expect(submitted.status).toBe(202);
    const aTask = submitted.json.id as string;
    const aFailed = await failedTask("tenant-a");
    const aKeyId = a.id;
    const aIds = [aTask, aFailed, aKeyId];
    const stand = new Map(aIds.map((id) => [id, id === aKeyId ? randomUUID().replace(/-/g, "").slice(0, 16) : randomUUID()]));
    const asUnknown = (text: string) => aIds.reduce((t, id) => t.replaceAll(id, stand.get(id) ?? id), text);

    // Positive control: A sees its own.
    expect((await call("GET", `/v1/tasks/${aTask}`, a.key)).json).toMatchObject({ id: aTask, tenant: "tenant-a" });
    expect((await call("GET", "/v1/dead-letters", a.key)).json).toEqual(expect.arrayContaining([expect.objectContaining({ task_id: aFailed })]));

    type Case = { path: string; body?: unknown; headers?: Record<string, string>; ops: number; admin: number; check?: (r: Answer) => void };
    const noneOfA = (r: Answer) => {
      for (const id of aIds) expect(JSON.stringify(r.json)).not.toContain(id);
    };
    const cases: Record<string, Case[]> = {
      "POST /tasks": [
        {
          path: "/v1/tasks",
          body: { agent: "order-router", input: { order_id: "ORD-2" } },
          headers: { "Idempotency-Key": idemKey },
          ops: 202,
          admin: 202,
          check: (r) => expect(r.json.id).not.toBe(aTask),
        },
      ],
      "GET /tasks/:id": [{ path: `/v1/tasks/${aTask}`, ops: 404, admin: 404 }, { path: `/v1/tasks/${aFailed}`, ops: 404, admin: 404 }],
      "GET /tasks/:id/steps": [{ path: `/v1/tasks/${aTask}/steps`, ops: 404, admin: 404 }, { path: `/v1/tasks/${aFailed}/steps`, ops: 404, admin: 404 }],
      "GET /dead-letters": [{ path: "/v1/dead-letters", ops: 200, admin: 200, check: noneOfA }],
      "POST /tasks/:id/redrive": [{ path: `/v1/tasks/${aFailed}/redrive`, ops: 404, admin: 404 }, { path: `/v1/tasks/${aTask}/redrive`, ops: 404, admin: 404 }],
      "POST /tasks/:id/cancel": [{ path: `/v1/tasks/${aTask}/cancel`, body: { reason: "not mine" }, ops: 404, admin: 404 }, { path: `/v1/tasks/${aFailed}/cancel`, ops: 404, admin: 404 }],
      "GET /tasks": [{ path: "/v1/tasks", ops: 200, admin: 200, check: noneOfA }],
      "GET /tasks/:id/events": [{ path: `/v1/tasks/${aTask}/events`, ops: 404, admin: 404 }],
      "GET /approvals": [{ path: "/v1/approvals?status=pending", ops: 200, admin: 200, check: noneOfA }],
      "POST /tasks/:id/approval": [{ path: `/v1/tasks/${aTask}/approval`, body: { decision: "approve" }, ops: 404, admin: 404 }],
      "GET /switches": [{ path: "/v1/switches", ops: 200, admin: 200, check: noneOfA }],
      // Cluster-wide control takes a key of the operator's tenant: tenant B's operate key is refused.
      "PUT /switches/:kind/:name": [{ path: "/v1/switches/tool/auth_probe_tool", body: { paused: false }, ops: 403, admin: 403 }],
      "GET /agents": [{ path: "/v1/agents", ops: 200, admin: 200, check: noneOfA }],
      "GET /agents/:name": [{ path: "/v1/agents/order-router", ops: 200, admin: 200, check: noneOfA }],
      "POST /agents/:name/canary": [{ path: "/v1/agents/order-router/canary", body: { prompt: "x" }, ops: 403, admin: 403 }],
      "DELETE /agents/:name/canary": [{ path: "/v1/agents/order-router/canary", ops: 403, admin: 403 }],
      // The operator's dashboard shows every tenant's figures: tenant B's keys are refused, whatever their scopes.
      "GET /queues": [{ path: "/v1/queues", ops: 403, admin: 403 }],
      "GET /limits": [{ path: "/v1/limits", ops: 403, admin: 403 }],
      "POST /keys": [
        { path: "/v1/keys", body: { tenant: "tenant-b", scopes: ["read"], replaces: aKeyId }, ops: 403, admin: 404 },
        { path: "/v1/keys", body: { tenant: "tenant-a", scopes: ["read"] }, ops: 403, admin: 403 },
      ],
      "GET /keys": [{ path: "/v1/keys", ops: 403, admin: 200, check: noneOfA }],
      "DELETE /keys/:id": [{ path: `/v1/keys/${aKeyId}`, ops: 403, admin: 404 }],
    };
    // Every route of the table has its cases: a route added without them fails here.
    expect(Object.keys(cases).sort()).toEqual(V1_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    for (const route of V1_ROUTES) {
      for (const c of cases[`${route.method} ${route.path}`] ?? []) {
        for (const [key, want] of [
          [bOps.key, c.ops],
          [bAdmin.key, c.admin],
        ] as const) {
          const r = await call(route.method, c.path, key, c.body, c.headers);
          expect(r.status, `${route.method} ${c.path} ${JSON.stringify(r.json)}`).toBe(want);
          c.check?.(r);
          if (want < 300) noneOfA(r);
          if (want === 404) {
            // Exactly the answer for ids that name nothing at all.
            const unknown = await call(route.method, asUnknown(c.path), key, c.body === undefined ? undefined : JSON.parse(asUnknown(JSON.stringify(c.body))), c.headers);
            expect(unknown.status).toBe(404);
            expect(asUnknown(JSON.stringify(r.json))).toBe(JSON.stringify(unknown.json));
          }
        }
      }
    }
    // A's task and key are untouched: still readable, still not redriven, the key still works.
    expect((await call("GET", `/v1/tasks/${aFailed}`, a.key)).json).toMatchObject({ status: "failed" });
    expect((await call("GET", `/v1/tasks/${aTask}`, a.key)).json.status).not.toBe("cancelled");
    expect((await call("GET", "/v1/dead-letters", a.key)).status).toBe(200);
  });

  it("a replaced key keeps working until its overlap ends, then answers 401; the new one works", async () => {
    const old = await newKey("rotating", ["read"]);
    expect((await call("GET", "/v1/dead-letters", old.key)).status).toBe(200);
    const fresh = await newKey("rotating", ["read"], { replaces: old.id, overlap_seconds: 2 });
    expect((await call("GET", "/v1/dead-letters", old.key)).status).toBe(200);
    const listed = (await call("GET", "/v1/keys", ADMIN_SECRET)).json as unknown as Array<{ id: string; expires_at: string | null }>;
    expect(listed.find((k) => k.id === old.id)?.expires_at).not.toBeNull();
    await sleep(2_500);
    expect((await call("GET", "/v1/dead-letters", old.key)).status).toBe(401);
    expect((await call("GET", "/v1/dead-letters", fresh.key)).status).toBe(200);
    // An expired key cannot be replaced again.
    expect((await call("POST", "/v1/keys", ADMIN_SECRET, { tenant: "rotating", scopes: ["read"], replaces: old.id })).status).toBe(404);
  });

  it("a revoked key answers 401 at once", async () => {
    const k = await newKey("revoking", ["read"]);
    expect((await call("GET", "/v1/dead-letters", k.key)).status).toBe(200);
    const del = await call("DELETE", `/v1/keys/${k.id}`, ADMIN_SECRET);
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ id: k.id, revoked_at: expect.any(String) });
    expect((await call("GET", "/v1/dead-letters", k.key)).status).toBe(401);
    expect((await call("DELETE", `/v1/keys/${"f".repeat(16)}`, ADMIN_SECRET)).status).toBe(404);
  });

  it("stores keys hashed only and never lists a secret or a hash", async () => {
    const k = await newKey("stored", ["read"]);
    const secret = k.key.slice(21);
    const { rows } = await store.pool.query<Record<string, unknown>>("SELECT * FROM api_keys WHERE id = $1", [k.id]);
    const row = rows[0];
    expect(row).toBeDefined();
    expect(JSON.stringify(row)).not.toContain(secret);
    expect((row?.secret_hash as Buffer).toString("hex")).toBe(createHash("sha256").update(secret).digest("hex"));
    const listed = JSON.stringify((await call("GET", "/v1/keys", ADMIN_SECRET)).json);
    expect(listed).toContain(k.id);
    expect(listed).not.toContain(secret);
    expect(listed).not.toMatch(/"secret|_hash"/);
  });

  // The store's side of the same contract, on the same database.
  it("an idempotency key is per tenant: the same key in another tenant is another task, never the first one's id", async () => {
    const key = `k-${randomUUID()}`;
    const task = (tenant: string) => ({ id: randomUUID(), agent: "order-router", input: "x", priority: "normal" as const, metadata: {}, prompt_version: "pv", tenant });
    const a = await store.store.createTask(task("idem-a"), key);
    const b = await store.store.createTask(task("idem-b"), key);
    const a2 = await store.store.createTask(task("idem-a"), key);
    expect([a.created, b.created, a2.created]).toEqual([true, true, false]);
    expect(b.task.id).not.toBe(a.task.id);
    expect(a2.task.id).toBe(a.task.id);
    expect(b.task.tenant).toBe("idem-b");
    expect(await store.store.getTask(a.task.id, "idem-b")).toBeNull();
    expect(await store.store.getTask(a.task.id)).toMatchObject({ tenant: "idem-a" });
  });

  it("steps, dead letters and redrive are seen only by the task's tenant", async () => {
    const id = await failedTask("own");
    expect(await store.store.listSteps(id, "other")).toEqual([]);
    expect((await store.store.listDeadLetters(100, "other")).map((d) => d.task_id)).not.toContain(id);
    expect((await store.store.listDeadLetters(100, "own")).map((d) => d.task_id)).toEqual([id]);
    expect(await store.store.redrive(id, "other")).toBe(false);
    expect(await store.store.redrive(id, "own")).toBe(true);
  });
});

describe("auth - off by default in embedded mode", () => {
  let embedded: ClawfleetNode | undefined;
  afterAll(async () => {
    await embedded?.stop();
  });

  it("serves every route without a key, as tenant default", async () => {
    embedded = await startNode(
      loadConfig({ CLAWFLEET_PROMPTS_DIR: ORDER_ROUTER_PROMPTS, PORT: "0", CLAWFLEET_DATA_DIR: "memory://", CLAWFLEET_NAMESPACE: uniqueId("authoff"), LOG_LEVEL: "error" }),
    );
    expect(embedded.resources.config.auth.enabled).toBe(false);
    const url = `http://127.0.0.1:${embedded.port}`;
    const r = await fetch(`${url}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ agent: "order-router", input: { order_id: "ORD-1" } }) });
    expect(r.status).toBe(202);
    const { id } = (await r.json()) as { id: string };
    expect(await (await fetch(`${url}/v1/tasks/${id}`)).json()).toMatchObject({ id, tenant: "default" });
    expect((await fetch(`${url}/v1/keys`)).status).toBe(200);
  }, 60_000);
});
