/**
 * ratelimiter - the gateway's reserve/settle cycle and its backpressure, on
 * in-process buckets, and end to end through the official SDK against the
 * simulated provider's own limits.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config";
import type { CompleteRequest, Priority } from "../../src/contracts";
import { ConfigError, ProviderRequestError, RateLimitedError } from "../../src/errors";
import { AnthropicGateway, type ProviderResponse } from "../../src/llm/anthropicGateway";
import { MemoryBuckets, RateLimiter, requestBucket, type BucketSpec, type LimitedCall, type RateLimitTable, type Triple } from "../../src/ratelimit";
import { UNLIMITED } from "../../src/ratelimit/limits";
import { ScopeWaitQueue } from "../../src/ratelimit/waitQueue";
import { startSimServer, type SimServer } from "../../src/sim";

function call(over: Partial<LimitedCall> = {}): LimitedCall {
  return {
    model: "claude-sonnet-5-5",
    tier: "reason",
    priority: "normal",
    maxTokens: 100,
    system: "You are a test.",
    messages: [{ role: "user", content: "hello" }],
    tools: [],
    ...over,
  };
}

function limiter(limits: RateLimitTable, opts: { windowMs?: number; maxWaitMs?: number; random?: () => number } = {}): RateLimiter {
  return new RateLimiter(new MemoryBuckets(), {
    limits,
    windowMs: opts.windowMs ?? 1000,
    maxWaitMs: opts.maxWaitMs ?? 2000,
    horizonMs: 5,
    ...(opts.random ? { random: opts.random } : {}),
  });
}

/** A simulated clock for one test (the describe's afterEach gives the real one back): timing on a loaded machine is not the subject. */
const simulatedClock = () => vi.useFakeTimers({ toFake: ["Date", "performance", "setTimeout", "clearTimeout"] });

const usage = (input: number, output: number) => ({ input_tokens: input, output_tokens: output, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 });

describe("ratelimiter - backpressure", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("backpressure - waiters are admitted high before normal before low, first come first served within a priority", async () => {
    // 170 requests/s after the burst of one: a waiter every ~6 ms.
    const rl = limiter({ "claude-sonnet-5-5": { rpm: 200 } });
    const order: string[] = [];
    const go = (name: string, priority: Priority) => rl.acquire(call({ priority })).then(() => order.push(name));
    const all = [go("first", "normal"), go("low1", "low"), go("normal1", "normal"), go("high1", "high"), go("low2", "low"), go("normal2", "normal"), go("high2", "high")];
    await Promise.all(all);
    expect(order).toEqual(["first", "high1", "high2", "normal1", "normal2", "low1", "low2"]);
  });

  it("backpressure - past the maximum wait a caller gets a retryable RateLimitedError whose retryAfter grows with its place in the queue", async () => {
    // One request every 1000/90 ≈ 11.1 ms; a caller waits at most 20 ms. On a simulated clock: a loaded
    // machine's late timers would refuse callers in different rounds, each measured from a later "now".
    simulatedClock();
    const interval = 1 / requestBucket(120, 1000).refillPerMs;
    const rl = limiter({ "claude-sonnet-5-5": { rpm: 120 } }, { maxWaitMs: 20, random: () => 0 });
    const t0 = Date.now();
    const answeredAt: number[] = [];
    const settled = Promise.allSettled(Array.from({ length: 6 }, (_, i) => rl.acquire(call()).finally(() => void (answeredAt[i] = Date.now() - t0))));
    await vi.advanceTimersByTimeAsync(100);
    const outcomes = await settled;
    expect(outcomes.slice(0, 2).map((o) => o.status)).toEqual(["fulfilled", "fulfilled"]);
    const refused = outcomes.slice(2).map((o) => (o.status === "rejected" ? (o.reason as unknown) : undefined));
    for (const err of refused) {
      expect(err).toBeInstanceOf(RateLimitedError);
      expect((err as RateLimitedError).retryable).toBe(true);
    }
    const after = refused.map((e) => (e as RateLimitedError).data?.retryAfter as number);
    // Staggered: each later caller is told to come back about one request interval later.
    for (let i = 1; i < after.length; i++) expect((after[i] as number) - (after[i - 1] as number)).toBeCloseTo(interval / 1000, 2);
    // The first one refused is told to come back when its slot comes: two intervals after the first caller's.
    expect((answeredAt[2] as number) + (after[0] as number) * 1000).toBeGreaterThanOrEqual(2 * interval - 1);
  });

  it("no thundering herd - when a provider 429's penalty ends, waiters start one by one at the refill pace", async () => {
    const rl = limiter({ "claude-sonnet-5-5": { rpm: 200 } }); // one per 1000/170 ≈ 5.9 ms
    const interval = 1 / requestBucket(200, 1000).refillPerMs;
    const p = await rl.acquire(call());
    await p.failed(new RateLimitedError("429", { retryAfter: 0.05, retryAfterMs: 50, source: "provider" }));
    const t0 = Date.now();
    const starts: number[] = [];
    await Promise.all(Array.from({ length: 6 }, () => rl.acquire(call()).then(() => starts.push(Date.now() - t0))));
    expect(starts[0]).toBeGreaterThanOrEqual(50);
    // One by one: the sixth waiter starts no sooner than five refill intervals after the penalty ended. Measured
    // from the penalty's end, not from the first start: a first start that fires late must not shrink the gap.
    expect(starts[5]).toBeGreaterThanOrEqual(50 + 5 * interval - 3);
  });

  it("a call needing more than a whole window's limit is refused for good, not retried", async () => {
    const rl = limiter({ "claude-sonnet-5-5": { otpm: 1000 } });
    await expect(rl.acquire(call({ maxTokens: 4000 }))).rejects.toBeInstanceOf(ProviderRequestError);
  });
});

describe("ratelimiter - reserve, then settle", () => {
  it("settle - output is reserved from max_tokens and refunded to actual usage", async () => {
    // Holds 1000 output tokens (1/60 of the limit), refilling ~1 per ms.
    const rl = limiter({ "claude-sonnet-5-5": { otpm: 60_000 } }, { windowMs: 60_000, maxWaitMs: 10 });
    const first = await rl.acquire(call({ maxTokens: 600 }));
    expect(first.reserved[2]).toBe(600);
    await expect(rl.acquire(call({ maxTokens: 600 }))).rejects.toBeInstanceOf(RateLimitedError);
    await first.settle(usage(10, 50)); // 550 unused output tokens come back
    const second = await rl.acquire(call({ maxTokens: 600 }));
    await second.settle(usage(10, 600));
    await expect(rl.acquire(call({ maxTokens: 400 }))).rejects.toBeInstanceOf(RateLimitedError);
  });

  it("headers - an unconfigured model takes the limits the provider reports, and a remaining of 0 empties the bucket", async () => {
    const big = call({ messages: [{ role: "user", content: "x".repeat(2000) }] }); // ~500 input tokens
    for (const remaining of [undefined, 0]) {
      const rl = limiter({}, { windowMs: 60_000, maxWaitMs: 10 });
      const p = await rl.acquire(call());
      await p.settle(usage(10, 5), { inputTokensLimit: 100_000, inputTokensRemaining: remaining });
      // Input tokens now limited at 100k/min (a bucket of ~1667, ~1.6 per ms): 500 fit, unless the provider says none remain.
      const next = rl.acquire(big);
      if (remaining === undefined) await expect(next).resolves.toBeDefined();
      else await expect(next).rejects.toBeInstanceOf(RateLimitedError);
    }
  });

  it("headers - until a model's limits are known, its calls go one at a time; an answer without limit headers makes it unlimited", async () => {
    const rl = limiter({}, { maxWaitMs: 5000 });
    const admitted: number[] = [];
    const first = await rl.acquire(call());
    const waiting = [1, 2].map((i) => rl.acquire(call()).then((p) => (admitted.push(i), p)));
    await new Promise((r) => setTimeout(r, 50));
    expect(admitted).toEqual([]);
    await first.settle(usage(10, 5));
    await Promise.all(waiting);
    expect(admitted.sort()).toEqual([1, 2]);
  });

  it("estimator - the input estimate learns the ratio of actual to estimated tokens per model", async () => {
    const rl = limiter({});
    const p = await rl.acquire(call());
    const raw = p.reserved[1];
    await p.settle(usage(raw * 2, 5));
    expect(rl.estimator.ratio("claude-sonnet-5-5")).toBeCloseTo(2, 5);
    expect(rl.estimator.ratio("claude-haiku-5-5")).toBe(1);
    const q = await rl.acquire(call());
    expect(q.reserved[1]).toBe(raw * 2);
  });
});

describe("ratelimiter - against the simulated provider", () => {
  let sim: SimServer;
  const windowMs = 3000;
  const rpm = 300; // 5 per 50 ms short window
  beforeAll(async () => {
    sim = await startSimServer({ requestsPerMinute: rpm, inputTokensPerMinute: 2_000_000, outputTokensPerMinute: 400_000, limitWindowMs: windowMs, latencyMs: 5 });
  });
  afterAll(async () => {
    await sim.close();
  });

  it("end to end - 80 concurrent calls through the limiter meet no 429 and stay within the limit in every window", async () => {
    const rl = limiter({ "claude-sonnet-5-5": { rpm, itpm: 2_000_000, otpm: 400_000 } }, { windowMs, maxWaitMs: 60_000 });
    const gw = new AnthropicGateway({ apiKey: "k", baseURL: sim.url, maxRetries: 0 });
    const starts: number[] = [];
    await Promise.all(
      Array.from({ length: 80 }, async (_, i) => {
        const req: CompleteRequest = { ...call({ maxTokens: 200 }), taskId: `t${i}`, agent: "x", promptVersion: "v", step: 1 };
        const permit = await rl.acquire(req);
        starts.push(performance.now());
        let r: ProviderResponse;
        try {
          r = await gw.complete(req);
        } catch (err) {
          await permit.failed(err);
          throw err;
        }
        await permit.settle(r.usage, r.rateLimit);
      }),
    );
    expect(sim.stats().responses_by_status).toEqual({ "200": 80 });
    // Paced: 80 calls cannot start in less than 79 refill intervals (270 per 3 s: 11.1 ms).
    const interval = 1 / requestBucket(rpm, windowMs).refillPerMs;
    starts.sort((a, b) => a - b);
    expect((starts.at(-1) as number) - (starts[0] as number)).toBeGreaterThanOrEqual(79 * interval - 10);
  }, 20_000);
});

describe("ratelimiter - configuration", () => {
  it("config - CLAWFLEET_RATE_LIMITS and CLAWFLEET_PRICES are validated JSON with documented defaults", () => {
    const d = loadConfig({});
    expect(d.rateLimits).toEqual({ limits: {}, windowMs: 60_000, maxWaitMs: 300_000 });
    expect(d.prices["claude-sonnet-5-5"]).toEqual({ input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 });

    const c = loadConfig({
      CLAWFLEET_RATE_LIMITS: '{"claude-sonnet-5-5": {"rpm": 1000, "itpm": 400000, "otpm": 80000, "tiers": {"classify": {"rpm": 100}}}}',
      CLAWFLEET_RATE_LIMIT_WINDOW_MS: "6000",
      CLAWFLEET_PRICES: '{"claude-haiku-5-5": {"input": 0.8, "output": 4}}',
    });
    expect(c.rateLimits.limits["claude-sonnet-5-5"]?.tiers?.classify).toEqual({ rpm: 100 });
    expect(c.rateLimits.windowMs).toBe(6000);
    expect(c.prices["claude-haiku-5-5"]).toEqual({ input: 0.8, output: 4, cacheRead: 0.08, cacheWrite: 1 });
    expect(c.prices["claude-sonnet-5-5"]?.input).toBe(3);

    for (const [variable, value] of [
      ["CLAWFLEET_RATE_LIMITS", "{not json"],
      ["CLAWFLEET_RATE_LIMITS", '{"m": {"rpm": -5}}'],
      ["CLAWFLEET_RATE_LIMITS", '{"m": {"rpn": 5}}'],
      ["CLAWFLEET_PRICES", '{"m": {"input": "cheap"}}'],
      ["CLAWFLEET_RATE_LIMIT_WINDOW_MS", "0"],
    ]) {
      expect(() => loadConfig({ [variable as string]: value }), `${variable}=${value}`).toThrow(ConfigError);
    }
  });
});

describe("ratelimiter - the wait queue's round trips", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** In-process buckets that count their round trips and the calls each carried. */
  function countingBuckets(): { buckets: MemoryBuckets; trips: number[] } {
    const buckets = new MemoryBuckets();
    const trips: number[] = [];
    const many = buckets.reserveMany.bind(buckets);
    buckets.reserveMany = async (...args: Parameters<MemoryBuckets["reserveMany"]>) => {
      trips.push(args[2].length);
      return many(...args);
    };
    return { buckets, trips };
  }

  it("callers who queue together are reserved together, admitted in queue order", async () => {
    const { buckets, trips } = countingBuckets();
    const q = new ScopeWaitQueue("m", buckets, { maxWaitMs: 2000, horizonMs: 5 });
    const specs: Triple<BucketSpec> = [requestBucket(600_000, 60_000), UNLIMITED, UNLIMITED];
    const order: string[] = [];
    const priorities: Priority[] = ["low", "normal", "high", "normal", "low", "high", "normal", "normal", "low", "high"];
    await Promise.all(priorities.map((p, i) => q.enter(specs, [1, 0, 0], p).then(() => order.push(`${p}${i}`))));
    // The first caller asks alone; the nine that queued while it was on its way ask in one round trip.
    expect(trips).toEqual([1, 9]);
    expect(order).toEqual(["low0", "high2", "high5", "high9", "normal1", "normal3", "normal6", "normal7", "low4", "low8"]);
  });

  it("once the limit binds, each caller admitted costs one round trip: the queue asks again when the head's slot is within the horizon, not before", async () => {
    // A simulated clock: the round trips are the subject, not how late a loaded machine's timers fire.
    simulatedClock();
    const { buckets, trips } = countingBuckets();
    const q = new ScopeWaitQueue("m", buckets, { maxWaitMs: 10_000, horizonMs: 10 });
    // No burst, and a request every 20 ms: twice the horizon, so a round trip can admit one waiter.
    const specs: Triple<BucketSpec> = [{ capacity: 1, refillPerMs: 1 / 20 }, UNLIMITED, UNLIMITED];
    const callers = 60;
    const admitted = Promise.all(Array.from({ length: callers }, () => q.enter(specs, [1, 0, 0], "normal")));
    await vi.advanceTimersByTimeAsync(callers * 20 + 200);
    await admitted;
    // A queue that asked before the head's slot was within the horizon would be refused and ask again.
    expect(trips.length).toBeLessThanOrEqual(callers * 1.1);
    // A trip can book one call (the bucket holds one request, and refills half of one within the horizon): it
    // carries that one and the next, whose refusal says when to ask again, not the whole queue.
    expect(Math.max(...trips)).toBe(2);
  });

  it("a caller who comes while the scope's one request of burst is still refilling waits for it before asking: no round trip is spent on a sure refusal", async () => {
    // A simulated clock: the pairs' timing is the subject, not a loaded machine's timers.
    simulatedClock();
    const { buckets, trips } = countingBuckets();
    const q = new ScopeWaitQueue("m", buckets, { maxWaitMs: 10_000, horizonMs: 10 });
    // A request bucket as requestBucket makes it: one request of burst, one more every 20 ms.
    const specs: Triple<BucketSpec> = [{ capacity: 1, refillPerMs: 1 / 20 }, UNLIMITED, UNLIMITED];
    const pairs = 15;
    const t0 = Date.now();
    const at: number[][] = [];
    // Callers come two at a time, 60 ms apart: the first of a pair finds the bucket full, the second finds it empty.
    const entered = Array.from({ length: pairs }, (_, i) =>
      new Promise<void>((r) => setTimeout(r, i * 60)).then(() =>
        Promise.all([0, 1].map(() => q.enter(specs, [1, 0, 0], "normal").then(() => Date.now() - t0))).then((times) => void (at[i] = times)),
      ),
    );
    await vi.advanceTimersByTimeAsync(pairs * 60 + 100);
    await Promise.all(entered);
    // The second of each pair asked at once would be refused, then asked again: three round trips a pair
    // on this clock (on a real one, where a timer can fire early, about four).
    expect(trips.length).toBe(pairs * 2);
    // Nobody waited past the slot the bucket gave it: the second of a pair goes 20 ms after the first.
    for (const [first, second] of at) expect((second as number) - (first as number)).toBeLessThanOrEqual(21);
  });

  it("a caller whose deadline comes before the request has refilled is refused at once, told when to come back, not held past it", async () => {
    simulatedClock();
    const { buckets, trips } = countingBuckets();
    // One request every 200 ms; a caller waits at most 50.
    const q = new ScopeWaitQueue("m", buckets, { maxWaitMs: 50, horizonMs: 10, random: () => 0 });
    const specs: Triple<BucketSpec> = [{ capacity: 1, refillPerMs: 1 / 200 }, UNLIMITED, UNLIMITED];
    const t0 = Date.now();
    const first = q.enter(specs, [1, 0, 0], "normal");
    const second = q.enter(specs, [1, 0, 0], "normal").then(
      () => undefined,
      (err: unknown) => ({ err, at: Date.now() - t0 }),
    );
    await vi.advanceTimersByTimeAsync(300);
    await first;
    const refused = await second;
    expect(refused?.err).toBeInstanceOf(RateLimitedError);
    // Refused as soon as the first was booked, with the wait until the bucket holds a request again.
    expect(refused?.at).toBeLessThan(5);
    expect(((refused?.err as RateLimitedError).data?.retryAfter as number) * 1000).toBeGreaterThanOrEqual(190);
    expect(trips).toEqual([1]);
  });

  it("a refused caller ends its round trip: those behind it wait their turn, and only the refused one's wait paces them", async () => {
    const { buckets, trips } = countingBuckets();
    const q = new ScopeWaitQueue("m", buckets, { maxWaitMs: 5000, horizonMs: 0 });
    // Two requests of burst, one more every 200 ms.
    const specs: Triple<BucketSpec> = [{ capacity: 2, refillPerMs: 1 / 200 }, UNLIMITED, UNLIMITED];
    const t0 = Date.now();
    const at: number[] = [];
    await Promise.all([0, 1, 2, 3].map(() => q.enter(specs, [1, 0, 0], "normal").then(() => at.push(Date.now() - t0))));
    expect(trips[0]).toBe(1);
    // The second trip carried the three still waiting: the second caller was admitted and the third refused
    // (the contract suite checks that nobody behind a refused call is looked at).
    expect(trips[1]).toBe(3);
    expect(at[0]).toBeLessThan(100);
    expect(at[1]).toBeLessThan(100);
    expect(at[2]).toBeGreaterThanOrEqual(190);
    expect(at[3]).toBeGreaterThanOrEqual(390);
  });
});
