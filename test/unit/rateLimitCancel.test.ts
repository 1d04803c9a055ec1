/**
 * rate-limit queue - a planner's thousands of tasks wait their turn in the gateway's queue when the
 * rate limit binds (by default a call waits up to 5 minutes there, instead of being refused after 2 s
 * and coming back with all the others, again and again); and a model call cancelled while it waits (its
 * planner is shutting down) leaves the queue at once: it is never admitted, spends no request of the
 * limit, and the call behind it takes its place. With thousands of tasks waiting, a planner that hands
 * its tasks back would otherwise leave thousands of dead waiters ahead of the planner that takes them over.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ServiceBroker } from "moleculer";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { rateGatewayService } from "../../services/rate-gateway.service";
import { loadConfig } from "../../src/config";
import type { CompleteRequest, CompleteResponse } from "../../src/contracts";
import { CallCancelledError, isRetryable, UnavailableError } from "../../src/errors";
import { Resources } from "../../src/node/resources";
import { MemoryBuckets, RateLimiter, type LimitedCall } from "../../src/ratelimit";
import { Metrics } from "../../src/telemetry/metrics";
import { cancellableCall, type CancellableBroker } from "../../src/transport/cancel";
import { ORDER_ROUTER_PROMPTS } from "../../testkit/examples";

const MODEL = "claude-haiku-4-5";

function limited(): LimitedCall {
  return { model: MODEL, tier: "reason", priority: "normal", maxTokens: 10, system: "s", messages: [{ role: "user", content: "hi" }], tools: [] };
}

describe("rate-limit queue - the default wait", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("with the default CLAWFLEET_RATE_LIMIT_MAX_WAIT_MS, 300 callers needing 30 s of the limit all wait their turn, in order, none refused", async () => {
    vi.useFakeTimers({ toFake: ["Date", "performance", "setTimeout", "clearTimeout"] });
    const { maxWaitMs, windowMs } = loadConfig({}).rateLimits;
    // 600 a minute: one request every ~105 ms (limits.ts paces at 9.5 per 1/60 of the window).
    const rl = new RateLimiter(new MemoryBuckets(), { limits: { [MODEL]: { rpm: 600 } }, windowMs, maxWaitMs, horizonMs: 5 });
    const order: number[] = [];
    const all = Promise.allSettled(Array.from({ length: 300 }, (_, i) => rl.acquire(limited()).then(() => order.push(i))));
    await vi.advanceTimersByTimeAsync(40_000);
    const outcomes = await all;
    expect(outcomes.filter((o) => o.status === "rejected")).toEqual([]);
    expect(order).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });
});

describe("rate-limit cancel - the limiter's queue", () => {
  it("a waiter whose signal aborts is rejected with the signal's reason at once, and the one behind it is admitted in its slot", async () => {
    // A burst of one, then one request per 500 ms (a limit of 1 per window is paced at half of it: limits.ts).
    const rl = new RateLimiter(new MemoryBuckets(), { limits: { [MODEL]: { rpm: 1 } }, windowMs: 250, maxWaitMs: 60_000, horizonMs: 5 });
    await rl.acquire(limited());
    const t0 = performance.now();
    const abort = new AbortController();
    const cancelled = rl.acquire(limited(), abort.signal).then(
      () => "admitted",
      (err: unknown) => err,
    );
    const behind = rl.acquire(limited()).then(() => performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
    expect(rl.waiting()).toEqual({ [MODEL]: 2 });

    const reason = new CallCancelledError("shutting down");
    abort.abort(reason);
    expect(await cancelled).toBe(reason);
    expect(rl.waiting()).toEqual({ [MODEL]: 1 });
    // The slot at ~500 ms went to the caller behind; behind a waiter left in the queue it would come at ~1,000 ms.
    expect(await behind).toBeLessThan(750);
  });

  it("an already aborted signal is refused without entering the queue", async () => {
    const rl = new RateLimiter(new MemoryBuckets(), { limits: { [MODEL]: { rpm: 1 } }, windowMs: 60_000, maxWaitMs: 60_000 });
    await rl.acquire(limited());
    const reason = new Error("gone");
    await expect(rl.acquire(limited(), AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(rl.waiting()).toEqual({ [MODEL]: 0 });
  });
});

describe("rate-limit cancel - a gateway shutting down", () => {
  it("close() refuses every call still waiting at once, with a retryable error, and every call arriving after it", async () => {
    // One request per 500 ms, a max wait of a minute: without the close the two waiters would be held ~0.5 and ~1 s.
    const rl = new RateLimiter(new MemoryBuckets(), { limits: { [MODEL]: { rpm: 1 } }, windowMs: 250, maxWaitMs: 60_000, horizonMs: 5 });
    await rl.acquire(limited());
    const settled = (p: Promise<unknown>) => p.then(() => "admitted", (err: unknown) => err);
    const waiting = [settled(rl.acquire(limited())), settled(rl.acquire(limited()))];
    await new Promise((r) => setTimeout(r, 20));
    expect(rl.waiting()).toEqual({ [MODEL]: 2 });

    const t0 = performance.now();
    rl.close();
    const outcomes = await Promise.all(waiting);
    expect(performance.now() - t0).toBeLessThan(100);
    for (const err of outcomes) {
      expect(err).toBeInstanceOf(UnavailableError);
      expect(isRetryable(err)).toBe(true);
    }
    expect(rl.waiting()).toEqual({ [MODEL]: 0 });
    await expect(rl.acquire(limited())).rejects.toBeInstanceOf(UnavailableError);
  });
});

/** Answers connectivity checks; holds every model call, and tells which call arrived. */
function holdingProvider() {
  const arrivals: string[] = [];
  const arrived: Array<() => void> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url?.startsWith("/v1/messages/count_tokens")) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ input_tokens: 3 }));
        return;
      }
      arrivals.push(String((JSON.parse(Buffer.concat(chunks).toString()) as { metadata?: { user_id?: string } }).metadata?.user_id));
      for (const f of arrived.splice(0)) f();
    });
  });
  return {
    server,
    arrivals,
    nextArrival: () => new Promise<void>((r) => arrived.push(r)),
    url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
  };
}

function request(taskId: string): CompleteRequest {
  return {
    taskId,
    agent: "order-router",
    promptVersion: "v1",
    step: 1,
    tier: "reason",
    model: MODEL,
    maxTokens: 64,
    priority: "normal",
    system: "You route orders.",
    messages: [{ role: "user", content: "route ORD-1" }],
    tools: [],
  };
}

describe("rate-limit cancel - through the rate-gateway service", () => {
  const provider = holdingProvider();
  let broker: ServiceBroker;
  let resources: Resources;

  beforeAll(async () => {
    await new Promise<void>((r) => provider.server.listen(0, "127.0.0.1", () => r()));
    resources = new Resources(
      loadConfig({
        ANTHROPIC_BASE_URL: provider.url(),
        CLAWFLEET_PROMPTS_DIR: ORDER_ROUTER_PROMPTS,
        LOG_LEVEL: "fatal",
        // One call per 2 s (a limit of 1 per window is paced at half of it): the next two calls wait in the gateway's queue.
        CLAWFLEET_RATE_LIMITS: JSON.stringify({ [MODEL]: { rpm: 1 } }),
        CLAWFLEET_RATE_LIMIT_WINDOW_MS: "1000",
      }),
    );
    broker = new ServiceBroker({ logger: false, nodeID: "ratelimit-cancel-test" });
    broker.createService(rateGatewayService(resources, new Metrics({ node: "ratelimit-cancel-test" }, { enabled: false })));
    await broker.start();
  }, 30_000);

  afterAll(async () => {
    await broker?.stop();
    await resources?.close();
    provider.server.closeAllConnections();
    await new Promise<void>((r) => provider.server.close(() => r()));
  });

  it("a call cancelled in the queue never reaches the provider, and the call behind it goes in its slot", async () => {
    const calls: CancellableBroker = {
      call: (action, params, opts) => broker.call(action, params, opts),
      broadcast: (event, payload, groups) => broker.broadcast(event, payload, groups),
      getLogger: (name) => broker.getLogger(name),
    };
    const send = (taskId: string, signal: AbortSignal) =>
      cancellableCall<CompleteResponse, CompleteRequest>(calls, "rate-gateway.complete", request(taskId), signal, { timeout: 0, groups: ["rate-gateway"] }).catch(
        (err: unknown) => err,
      );
    const first = provider.nextArrival();
    const never = new AbortController();
    void send("first", never.signal);
    await first;
    const t0 = performance.now();
    const abort = new AbortController();
    const cancelled = send("cancelled", abort.signal);
    // Both reach the gateway's queue before the cancel does.
    await new Promise((r) => setTimeout(r, 100));
    const behind = provider.nextArrival().then(() => performance.now() - t0);
    void send("behind", never.signal);
    await new Promise((r) => setTimeout(r, 100));
    const reason = new Error("planner is shutting down");
    abort.abort(reason);
    expect(await cancelled).toBe(reason);

    // The slot at ~2 s is the next caller's; behind a waiter left in the queue it would come at ~4 s.
    expect(await behind).toBeLessThan(3_000);
    expect(provider.arrivals).toEqual(["first", "behind"]);
    never.abort(new Error("test over"));
  }, 20_000);
});
