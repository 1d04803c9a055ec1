/**
 * secrets - real processes given a recognisable fake ANTHROPIC_API_KEY (which the
 * simulated provider rejects with 401) and passwords in DATABASE_URL, REDIS_URL
 * and TRANSPORTER, at LOG_LEVEL=debug, with tracing on. The key is used (every
 * provider call fails with it, and the task fails), yet no secret appears anywhere:
 * not in any line either process prints, in the task's error, its steps, the
 * dead-letter list, /metrics, or the exported spans.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimServer, type SimServer } from "../../src/sim";
import { getJson, startNodeProcess, stopAll, submitTask, waitForTasks, type NodeProcess } from "../../testkit/cluster";
import { startOtlpReceiver, type OtlpReceiver } from "../../testkit/otlpReceiver";
import { createScratch, hasService, NATS_TEST_URL, REDIS_TEST_URL, type Scratch } from "../helpers/services";

const ready = hasService("postgres") && hasService("redis") && hasService("nats");

/** `url` with `user:password` put in (the test servers accept and ignore credentials they do not require). */
function withCredentials(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
}

describe.skipIf(!ready)("secrets - never in any output of a running cluster", () => {
  const suffix = randomUUID().replace(/-/g, "");
  const API_KEY = `sk-ant-api03-CLAWFLEETFAKEKEY${suffix}`;
  const SECRETS = {
    ANTHROPIC_API_KEY: API_KEY,
    "DATABASE_URL password": `pgSECRET${suffix}`,
    "REDIS_URL password": `redisSECRET${suffix}`,
    "TRANSPORTER password": `natsSECRET${suffix}`,
  };
  let scratch: Scratch;
  let sim: SimServer;
  let rx: OtlpReceiver;
  const nodes: NodeProcess[] = [];
  let base: string;

  beforeAll(async () => {
    scratch = await createScratch("e2esecret");
    // A provider that knows another key: every call with ours is a 401 naming no key.
    sim = await startSimServer({ apiKey: `the-only-key-the-sim-accepts-${suffix.slice(0, 8)}` });
    rx = await startOtlpReceiver();
    const env = (services: string) => ({
      TRANSPORTER: withCredentials(NATS_TEST_URL, "clawfleet", SECRETS["TRANSPORTER password"]),
      REDIS_URL: withCredentials(REDIS_TEST_URL, "", SECRETS["REDIS_URL password"]),
      DATABASE_URL: withCredentials(scratch.db.url, "postgres", SECRETS["DATABASE_URL password"]),
      ANTHROPIC_API_KEY: API_KEY,
      ANTHROPIC_BASE_URL: sim.url,
      CLAWFLEET_NAMESPACE: scratch.namespace,
      SERVICES: services,
      LOG_LEVEL: "debug",
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
    // The gateway is never ready (the provider refuses its key): wait for liveness only.
    nodes.push(await startNodeProcess({ name: "rest", env: env("checkpoint,api,intake,metrics,planner,executor") }));
    nodes.push(await startNodeProcess({ name: "rate-gateway", env: env("rate-gateway"), waitFor: "live" }));
    base = `http://127.0.0.1:${nodes[0]?.port}`;
  }, 120_000);

  afterAll(async () => {
    await stopAll(nodes);
    await sim?.close();
    await rx?.close();
    await scratch?.remove();
  }, 60_000);

  it("uses the key, fails the task on the provider's 401, and prints no secret anywhere", async () => {
    const { id, status } = await submitTask(base, { agent: "order-router", input: { order_id: "ORD-1042" } });
    expect(status).toBe(202);
    const done = await waitForTasks(base, [id], 30_000);
    const task = done.get(id);
    expect(task?.status).toBe("failed");
    expect(task?.error).toMatchObject({ type: "provider_request_error" });
    expect(JSON.stringify(task?.error)).toMatch(/401/);

    const seen: Record<string, string> = {
      task: JSON.stringify(await getJson(`${base}/v1/tasks/${id}`)),
      steps: JSON.stringify(await getJson(`${base}/v1/tasks/${id}/steps`)),
      deadLetters: JSON.stringify(await getJson(`${base}/v1/dead-letters`)),
    };
    for (const n of nodes) {
      seen[`${n.name} /metrics`] = await (await fetch(`http://127.0.0.1:${n.port}/metrics`)).text();
      seen[`${n.name} /health/ready`] = await (await fetch(`http://127.0.0.1:${n.port}/health/ready`)).text();
    }
    // Stop for real, so shutdown lines (and the last spans) are in too.
    await stopAll(nodes);
    for (const n of nodes) seen[`${n.name} output`] = n.output();
    seen.spans = rx.bodies.join("\n");

    // The run did what it had to: the key was presented and refused, and there is plenty of output.
    const gatewayOut = seen["rate-gateway output"] ?? "";
    expect(gatewayOut).toMatch(/"event":"provider\.ping_failed"[^\n]*401/);
    expect((seen["rest output"] ?? "").split("\n").length).toBeGreaterThan(50);
    expect(sim.stats().requests).toBeGreaterThan(0);
    expect(rx.spans.some((s) => s.name.startsWith("chat ") && s.statusCode === 2 && s.attributes["error.type"] === "provider_request_error")).toBe(true);

    const leaks: string[] = [];
    for (const [what, text] of Object.entries(seen)) {
      for (const [secret, value] of Object.entries(SECRETS)) {
        // The key's distinctive middle part too, in case something prints it cut or reformatted.
        for (const needle of [value, value.slice(8, 40)]) if (text.includes(needle)) leaks.push(`${secret} in ${what}`);
      }
    }
    expect([...new Set(leaks)]).toEqual([]);
  }, 90_000);
});
