/**
 * health - /health/ready and /health/live of real distributed nodes (NATS, Redis, Postgres):
 * ready when every role runs; 503 with the reason when the planner is stalled (a model call
 * that never answers), when a role is stopped, or when the gateway's provider is down; liveness
 * failing after the event loop was blocked longer than its limit.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config";
import { startNode, type ClawfleetNode } from "../../app/node";
import { ORDER_ROUTER_PROMPTS } from "../../testkit/examples";
import { freePort } from "../../testkit/cluster";
import { createTestDatabase, hasService, NATS_TEST_URL, REDIS_TEST_URL, uniqueId, type TestDatabase } from "../helpers/services";
import { bearer, issueTestKey, TEST_ADMIN_KEY } from "../../testkit/auth";

const ready = hasService("postgres") && hasService("redis") && hasService("nats");

/** A provider that answers connectivity checks and holds every model call until told to answer. */
function fakeProvider() {
  let holding = true;
  const held: http.ServerResponse[] = [];
  const message = JSON.stringify({
    id: "msg_health",
    type: "message",
    role: "assistant",
    model: "claude-haiku-4-5",
    content: [{ type: "text", text: "done" }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: 1, output_tokens: 1 },
  });
  const answer = (res: http.ServerResponse) => {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(message);
  };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url?.startsWith("/v1/messages/count_tokens")) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ input_tokens: 3 }));
      } else if (holding) held.push(res);
      else answer(res);
    });
  });
  return {
    server,
    get held() {
      return held.length;
    },
    release() {
      holding = false;
      for (const res of held.splice(0)) answer(res);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function busyWait(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // blocks the event loop on purpose
  }
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.json() };
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!ready)("health - readiness and liveness of distributed nodes", () => {
  const namespace = uniqueId("health");
  const gatewayNamespace = uniqueId("healthgw");
  const provider = fakeProvider();
  let db: TestDatabase;
  let node: ClawfleetNode;
  let gateway: ClawfleetNode;
  let base: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    await new Promise<void>((r) => provider.server.listen(0, "127.0.0.1", () => r()));
    const providerUrl = `http://127.0.0.1:${(provider.server.address() as AddressInfo).port}`;
    const common = { CLAWFLEET_PROMPTS_DIR: ORDER_ROUTER_PROMPTS, TRANSPORTER: NATS_TEST_URL, REDIS_URL: REDIS_TEST_URL, DATABASE_URL: db.url, PORT: "0", LOG_LEVEL: "fatal", CLAWFLEET_ADMIN_KEY: TEST_ADMIN_KEY };
    node = await startNode(
      loadConfig({
        ...common,
        CLAWFLEET_NAMESPACE: namespace,
        CLAWFLEET_NODE_ID: `${namespace}-all`,
        ANTHROPIC_BASE_URL: providerUrl,
        CLAWFLEET_PLANNER_STALL_MS: "1500",
        CLAWFLEET_LIVENESS_MAX_BLOCK_MS: "1000",
        CLAWFLEET_SHUTDOWN_GRACE_MS: "2000",
      }),
    );
    base = `http://127.0.0.1:${node.port}`;
    // Nothing listens on this port: the gateway's connectivity check fails.
    const closed = await freePort();
    gateway = await startNode(
      loadConfig({
        ...common,
        SERVICES: "rate-gateway",
        CLAWFLEET_NAMESPACE: gatewayNamespace,
        CLAWFLEET_NODE_ID: `${gatewayNamespace}-gw`,
        ANTHROPIC_BASE_URL: `http://127.0.0.1:${closed}`,
      }),
    );
  }, 90_000);

  afterAll(async () => {
    provider.release();
    await node?.stop();
    await gateway?.stop();
    await provider.close();
    await db?.drop();
    const redis = new Redis(REDIS_TEST_URL);
    try {
      for (const ns of [namespace, gatewayNamespace]) {
        const keys = await redis.keys(`${ns}*`);
        if (keys.length > 0) await redis.del(...keys);
      }
    } finally {
      redis.disconnect();
    }
  }, 60_000);

  it("answers 200 on /health/ready once every role of the process runs", async () => {
    await waitFor("ready", async () => (await getJson(`${base}/health/ready`)).status === 200);
    const { body } = await getJson(`${base}/health/ready`);
    expect(body.status).toBe("ready");
    expect(Object.keys(body.checks).sort()).toEqual(["api", "checkpoint", "executor", "intake", "metrics", "planner", "rate-gateway", "tools"]);
    expect(Object.values(body.checks).every((c: any) => c.ok)).toBe(true);
  });

  it("answers 503 naming the planner when it has a task in flight and no progress past the stall limit, 200 once it moves", async () => {
    const r = await fetch(`${base}/v1/tasks`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...bearer(await issueTestKey(base)) },
      body: JSON.stringify({ agent: "order-router", input: { order_id: "ORD-1042" } }),
    });
    expect(r.status).toBe(202);
    await waitFor("the model call to be held", async () => provider.held > 0);
    await waitFor("the planner to be reported stalled", async () => (await getJson(`${base}/health/ready`)).status === 503, 10_000);
    const { body } = await getJson(`${base}/health/ready`);
    expect(body.status).toBe("not_ready");
    expect(body.checks.planner.ok).toBe(false);
    expect(body.checks.planner.reason).toMatch(/^stalled: 1 task\(s\) in flight and no progress for \d+ s \(limit 2 s\)$/);
    expect(body.checks.executor.ok).toBe(true);

    provider.release();
    await waitFor("the planner to recover", async () => (await getJson(`${base}/health/ready`)).status === 200, 15_000);
  });

  it("answers 503 with the provider's failure for a rate-gateway whose provider is down", async () => {
    const { status, body } = await getJson(`http://127.0.0.1:${gateway.port}/health/ready`);
    expect(status).toBe(503);
    expect(body.checks["rate-gateway"].ok).toBe(false);
    expect(body.checks["rate-gateway"].reason).toMatch(/^provider not answering: /);
    // Liveness is about this process, not its provider.
    expect((await getJson(`http://127.0.0.1:${gateway.port}/health/live`)).status).toBe(200);
  });

  it("fails /health/live after the event loop was blocked longer than the limit", { timeout: 40_000 }, async () => {
    // Start-up work on a busy machine may have blocked the loop within the window; wait it out.
    await waitFor("live", async () => (await getJson(`${base}/health/live`)).status === 200, 15_000);
    const before = await getJson(`${base}/health/live`);
    expect(before.body.status).toBe("ok");
    busyWait(2000);
    const after = await getJson(`${base}/health/live`);
    expect(after.status).toBe(503);
    expect(after.body.status).toBe("failing");
    expect(after.body.reason).toMatch(/^event loop blocked for \d+ ms within the last 10 s \(limit 1000 ms\)$/);
    expect(after.body.event_loop.max_delay_ms).toBeGreaterThanOrEqual(1500);
  });

  it("answers 503 naming a role that stopped", async () => {
    const executor = node.broker.getLocalService("executor");
    expect(executor).toBeDefined();
    if (executor) await node.broker.destroyService(executor);
    const { status, body } = await getJson(`${base}/health/ready`);
    expect(status).toBe(503);
    expect(body.checks.executor).toEqual({ ok: false, reason: "not started" });
  });
});
