/**
 * Gateway overhead per call, against a simulated model with no latency:
 *
 * - reserve/settle: the time `limiter.acquire()` plus `permit.settle()` take
 *   around a provider call, with the Redis buckets (two Lua round trips), and
 *   the end-to-end latency of such calls against direct SDK calls;
 * - broker hop: a planner-side `rate-gateway.complete` call over NATS to a real
 *   rate-gateway process, against the same direct SDK call.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { ServiceBroker } from "moleculer";
import { brokerOptions } from "../../moleculer.config";
import { loadConfig } from "../../src/config";
import { AnthropicGateway } from "../../src/llm/anthropicGateway";
import type { CompleteRequest } from "../../src/contracts";
import { RateLimiter, RedisBuckets } from "../../src/ratelimit";
import { NATS_URL, REDIS_URL } from "./clawfleet";
import { percentile } from "./metrics";
import { prioritize, startNode, startSim } from "./procs";

export interface Overhead {
  calls: number;
  /** A direct SDK call to the sim, ms. */
  direct: { p50: number; p99: number };
  /** `limiter.acquire()`: one Lua round trip, on the call's path. */
  reserve: { p50: number; p99: number };
  /** `permit.settle()`: one Lua round trip, off the call's path (the gateway does not await it). */
  settle: { p50: number; p99: number };
  /** Reserve plus settle, as if both were on the path. */
  reserveSettle: { p50: number; p99: number };
  /** Percentiles of (acquire + call) minus those of direct calls, interleaved. */
  limitedMinusDirect: { p50: number; p99: number };
  /** Percentiles of `rate-gateway.complete` over NATS minus those of direct calls. */
  brokerHop: { p50: number; p99: number };
}

function request(i: number): CompleteRequest {
  return {
    taskId: randomUUID(),
    agent: "order-router",
    promptVersion: "bench",
    step: 1,
    tier: "reason",
    model: "claude-sonnet-5-5",
    maxTokens: 512,
    priority: "normal",
    system: "You route orders.",
    messages: [{ role: "user", content: JSON.stringify({ order_id: `ORD-${1000 + (i % 1000)}` }) }],
    tools: [],
  };
}

const stats = (xs: number[]) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99) });

export async function runOverhead(calls: number): Promise<Overhead> {
  // A latency benchmark on a shared machine: this process and the gateway measured run ahead of other work.
  prioritize(process.pid);
  const sim = await startSim("sim-overhead", { rpm: 100_000_000, itpm: 1e12, otpm: 1e12, windowMs: 60_000, latencyMs: 0, latencyJitterMs: 0 });
  const prefix = `cfbenchoh${randomUUID().slice(0, 8)}`;
  const redis = new Redis(REDIS_URL);
  const gw = new AnthropicGateway({ apiKey: "bench", baseURL: sim.url, maxRetries: 0 });
  // Limits far above what this loop can reach: the path is measured, never a wait.
  const limiter = new RateLimiter(new RedisBuckets(redis, { prefix }), {
    limits: { "claude-sonnet-5-5": { rpm: 10_000_000, itpm: 1e11, otpm: 1e11 } },
    windowMs: 60_000,
    maxWaitMs: 2000,
  });
  const direct: number[] = [];
  const limited: number[] = [];
  const reserve: number[] = [];
  const settle: number[] = [];
  const path: number[] = [];
  try {
    for (let i = 0; i < 200; i++) await gw.complete(request(i)); // warm-up
    for (let i = 0; i < calls; i++) {
      // Interleaved, so both see the same machine.
      let t = performance.now();
      await gw.complete(request(i));
      direct.push(performance.now() - t);

      t = performance.now();
      const permit = await limiter.acquire(request(i));
      const reserved = performance.now() - t;
      const r = await gw.complete(request(i));
      limited.push(performance.now() - t);
      const s = performance.now();
      await permit.settle(r.usage, r.rateLimit);
      const settled = performance.now() - s;
      reserve.push(reserved);
      settle.push(settled);
      path.push(reserved + settled);
    }

    // The broker hop: a real rate-gateway process (Redis buckets), called over NATS as a planner does.
    const namespace = `cfbenchoh${randomUUID().replace(/-/g, "").slice(0, 10)}`;
    const node = await startNode("rate-gateway", {
      TRANSPORTER: NATS_URL,
      REDIS_URL,
      DATABASE_URL: "postgres://unused@127.0.0.1:5432/unused",
      CLAWFLEET_NAMESPACE: namespace,
      SERVICES: "rate-gateway",
      ANTHROPIC_BASE_URL: sim.url,
      CLAWFLEET_RATE_LIMITS: JSON.stringify({ "claude-sonnet-5-5": { rpm: 10_000_000, itpm: 1e11, otpm: 1e11 } }),
    });
    prioritize(node.proc.pid);
    const config = loadConfig({ TRANSPORTER: NATS_URL, REDIS_URL, DATABASE_URL: "postgres://unused@127.0.0.1:5432/unused", CLAWFLEET_NAMESPACE: namespace, LOG_LEVEL: "warn" });
    const broker = new ServiceBroker({ ...brokerOptions(config), nodeID: `bench-${process.pid}` });
    const hop: number[] = [];
    try {
      await broker.start();
      await broker.waitForServices(["rate-gateway"], 30_000);
      for (let i = 0; i < 200; i++) await broker.call("rate-gateway.complete", request(i));
      for (let i = 0; i < calls; i++) {
        const t = performance.now();
        await broker.call("rate-gateway.complete", request(i));
        hop.push(performance.now() - t);
      }
    } finally {
      await broker.stop();
      await node.stop();
      const keys = await redis.keys(`${namespace}*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    const d = stats(direct);
    const l = stats(limited);
    const h = stats(hop);
    return {
      calls,
      direct: d,
      reserve: stats(reserve),
      settle: stats(settle),
      reserveSettle: stats(path),
      limitedMinusDirect: { p50: l.p50 - d.p50, p99: l.p99 - d.p99 },
      brokerHop: { p50: h.p50 - d.p50, p99: h.p99 - d.p99 },
    };
  } finally {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    await sim.stop();
  }
}

if (require.main === module) {
  void runOverhead(Number(process.argv[2] ?? 1000)).then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`));
}
