/**
 * ratelimit contract - the bucket semantics every `Buckets` implementation must
 * have: in-process `MemoryBuckets` (embedded mode) and `RedisBuckets` (the Lua
 * scripts on the real Redis). The cluster-wide case runs reservers in two child
 * OS processes and this one against the same Redis scope at once.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MemoryBuckets, type Buckets } from "../../src/ratelimit/buckets";
import { bucketSpecs, requestBucket, UNLIMITED, type BucketSpec, type Triple } from "../../src/ratelimit/limits";
import { RedisBuckets } from "../../src/ratelimit/redisBuckets";
import { ROOT } from "../../testkit/cluster";
import { hasService, REDIS_TEST_URL, uniqueId } from "../helpers/services";

interface Subject {
  buckets: Buckets;
  /** Where other OS processes can reach the same buckets (Redis only). */
  shared?: { redisUrl: string; prefix: string };
  /** The scope key's remaining time to live, ms (Redis only). */
  ttlOf?(scope: string): Promise<number>;
  cleanup(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A bucket holding `capacity` and refilling it over `windowMs`: the mechanics under test, whatever shape limits.ts gives. */
const flat = (capacity: number, windowMs: number): BucketSpec => ({ capacity, refillPerMs: capacity / windowMs });

/** Most starts in any window [t, t + len) (t at a start). */
function peak(starts: readonly number[], len: number): number {
  const s = [...starts].sort((a, b) => a - b);
  let best = 0;
  let j = 0;
  for (let i = 0; i < s.length; i++) {
    while ((s[j] as number) < (s[i] as number) - len + 1e-9) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

async function hammer(buckets: Buckets, scope: string, specs: Triple<BucketSpec>, need: Triple<number>, durationMs: number, concurrency: number, horizonMs: number): Promise<number[]> {
  const starts: number[] = [];
  const end = Date.now() + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const out = await buckets.reserve(scope, specs, need, horizonMs);
        if (out.admitted) starts.push(out.nowMs + out.waitMs);
        else await sleep(Math.max(0, out.waitMs - horizonMs));
      }
    }),
  );
  return starts;
}

function childReserver(args: Record<string, unknown>): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const script = path.join(ROOT, "test", "helpers", "ratelimitReserver.ts");
    const proc = spawn(process.execPath, ["--require", "tsx/cjs", script, JSON.stringify(args)], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    proc.stdout.on("data", (b: Buffer) => (out += b.toString()));
    proc.stderr.on("data", (b: Buffer) => (err += b.toString()));
    proc.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`reserver exited ${code}: ${err}`));
      resolve((JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as { starts: number[] }).starts);
    });
  });
}

const subjects: Array<[string, boolean, () => Promise<Subject>]> = [
  ["memory", true, async () => ({ buckets: new MemoryBuckets(), cleanup: async () => {} })],
  [
    "redis",
    hasService("redis"),
    async () => {
      const prefix = uniqueId("rltest");
      const redis = new Redis(REDIS_TEST_URL);
      const buckets = new RedisBuckets(redis, { prefix });
      return {
        buckets,
        shared: { redisUrl: REDIS_TEST_URL, prefix },
        ttlOf: (scope: string) => redis.pttl(buckets.key(scope)),
        async cleanup() {
          const keys = await redis.keys(`${prefix}:*`);
          if (keys.length > 0) await redis.del(...keys);
          await redis.quit();
        },
      };
    },
  ],
];

describe.each(subjects)("ratelimit contract - %s buckets", (name, available, make) => {
  let subject: Subject;
  let b: Buckets;
  let scope: string;
  beforeAll(async () => {
    if (!available) return;
    subject = await make();
    b = subject.buckets;
  });
  afterAll(async () => {
    if (available) await subject.cleanup();
  });
  afterEach(() => {
    scope = "";
  });
  const fresh = () => (scope = uniqueId("scope"));

  it.skipIf(!available)("reserve - a fresh scope is full: the first call goes at once and the request bucket then paces at its refill rate", async () => {
    fresh();
    // Slow enough that a busy machine's scheduling delays do not matter.
    const specs = bucketSpecs({ rpm: 600 }, 600_000); // one request of burst, refilled at 9.5 per minute
    const interval = 1 / specs[0].refillPerMs;
    expect(interval).toBeCloseTo(600_000 / 570, 6);
    const first = await b.reserve(scope, specs, [1, 0, 0], 0);
    expect(first).toMatchObject({ admitted: true, waitMs: 0 });
    const second = await b.reserve(scope, specs, [1, 0, 0], 0);
    expect(second.admitted).toBe(false);
    expect(second.waitMs).toBeGreaterThan(interval - 500); // minus what refilled between the two calls
    expect(second.waitMs).toBeLessThanOrEqual(interval + 0.01);
  });

  it.skipIf(!available)("reserve - all or nothing: a call refused for output tokens charges no request and no input", async () => {
    fresh();
    const specs: Triple<BucketSpec> = [flat(10, 60_000), flat(1000, 60_000), flat(100, 60_000)];
    expect((await b.reserve(scope, specs, [1, 10, 100], 0)).admitted).toBe(true);
    const refused = await b.reserve(scope, specs, [1, 10, 50], 0);
    expect(refused.admitted).toBe(false);
    expect(refused.waitMs).toBeGreaterThan(29_000); // 50 output tokens at 100/min
    // Nothing was charged by the refusal: 9 requests and 990 input tokens are still there.
    expect((await b.reserve(scope, specs, [9, 990, 0], 0)).admitted).toBe(true);
    expect((await b.reserve(scope, specs, [1, 0, 0], 0)).admitted).toBe(false);
  });

  it.skipIf(!available)("reserve - a wait within the horizon is booked: admitted now, the levels in debt, the caller told when to start", async () => {
    fresh();
    const specs: Triple<BucketSpec> = [requestBucket(660, 60_000), UNLIMITED, UNLIMITED]; // 10.5 per s
    const spacing = 1 / specs[0].refillPerMs;
    await b.reserve(scope, specs, [1, 0, 0], 0);
    const booked = [];
    for (let i = 0; i < 5; i++) booked.push(await b.reserve(scope, specs, [1, 0, 0], 1000));
    expect(booked.every((o) => o.admitted)).toBe(true);
    const starts = booked.map((o) => o.nowMs + o.waitMs);
    for (let i = 1; i < starts.length; i++) expect((starts[i] as number) - (starts[i - 1] as number)).toBeCloseTo(spacing, 1);
  });

  it.skipIf(!available)("reserve - a call larger than a bucket's capacity is booked until the refill covers it, and leaves its excess as debt", async () => {
    fresh();
    const specs: Triple<BucketSpec> = [UNLIMITED, { capacity: 100, refillPerMs: 0.1 }, UNLIMITED];
    // 250 from a full 100: starts once 150 more refilled (1.5 s), charged 250 + 150.
    const big = await b.reserve(scope, specs, [1, 250, 0], 0);
    expect(big.admitted).toBe(true);
    expect(big.waitMs).toBeCloseTo(1500, 3);
    const next = await b.reserve(scope, specs, [1, 10, 0], 0);
    expect(next.admitted).toBe(false);
    expect(next.waitMs).toBeGreaterThan(3000); // (10 − (100 − 400)) / 0.1, less what refilled meanwhile
    expect(next.waitMs).toBeLessThanOrEqual(3100.5);
  });

  it.skipIf(!available)("reserve - a call booked behind one bucket forfeits the refill another could not have held by its start", async () => {
    fresh();
    const specs: Triple<BucketSpec> = [{ capacity: 1, refillPerMs: 0.001 }, { capacity: 100, refillPerMs: 0.1 }, UNLIMITED];
    expect((await b.reserve(scope, specs, [1, 50, 0], 0)).admitted).toBe(true);
    // Waits ~1 s for its request; meanwhile the token bucket would pass its capacity: 50 is forfeited, not banked.
    const booked = await b.reserve(scope, specs, [1, 50, 0], 2000);
    expect(booked.admitted).toBe(true);
    expect(booked.waitMs).toBeGreaterThan(900);
    const tokensOnly = await b.reserve(scope, specs, [0, 60, 0], 0);
    expect(tokensOnly.admitted).toBe(false);
    expect(tokensOnly.waitMs).toBeGreaterThan(1000); // (60 − (−50)) / 0.1, less what refilled meanwhile
    expect(tokensOnly.waitMs).toBeLessThanOrEqual(1100.5);
  });

  it.skipIf(!available)("reserve - a caller that knows no limit is held to the one another caller stored, and never erases its debt", async () => {
    fresh();
    const limited: Triple<BucketSpec> = [UNLIMITED, { capacity: 100, refillPerMs: 0.01 }, UNLIMITED];
    const unknown: Triple<BucketSpec> = [UNLIMITED, UNLIMITED, UNLIMITED];
    expect((await b.reserve(scope, limited, [1, 100, 0], 0)).admitted).toBe(true);
    const debt = await b.reserve(scope, limited, [1, 50, 0], 10_000);
    expect(debt.admitted).toBe(true); // booked ~5 s ahead: the bucket is 50 in debt
    // A fresh gateway, no limits known: refused by the stored shape, not admitted as unlimited.
    const blind = await b.reserve(scope, unknown, [1, 10, 0], 0);
    expect(blind.admitted).toBe(false);
    expect(blind.waitMs).toBeGreaterThan(5000);
    await b.settle(scope, unknown, [0, 0, 0]);
    await sleep(1100);
    // The debt is still there (a wipe would have left the level at 0 and the key expiring within a second).
    const after = await b.reserve(scope, limited, [1, 10, 0], 0);
    expect(after.admitted).toBe(false);
    expect(after.waitMs).toBeGreaterThan(4000); // (10 + 50) / 0.01 − 1.1 s of refill, less the test's own time
    if (subject.ttlOf) expect(await subject.ttlOf(scope)).toBeGreaterThan(4000);
  });

  it.skipIf(!available)("reserveMany - calls reserved in one round trip are answered as if reserved one after another at one instant; the first refused ends the answer", async () => {
    fresh();
    const specs: Triple<BucketSpec> = [flat(5, 600_000), flat(1000, 600_000), UNLIMITED];
    const usage = { model: uniqueId("model"), windowMs: 60_000 };
    const answers = await b.reserveMany(scope, specs, [[1, 100, 7], [1, 200, 7], [1, 900, 7], [1, 10, 7], [1, 10, 7]], 0, { usage });
    // The third needs 900 of the 700 left: refused, and the two behind it are not looked at (none overtakes it).
    expect(answers.map((a) => a.admitted)).toEqual([true, true, false]);
    expect(answers.slice(0, 2).map((a) => a.waitMs)).toEqual([0, 0]);
    expect(answers[2]?.waitMs).toBeGreaterThan(200 * 600 - 500); // 200 tokens at 1000 per 10 min
    expect(new Set(answers.map((a) => a.nowMs)).size).toBe(1);
    // Exactly the two admitted calls were charged: 3 requests and 700 tokens are left.
    expect((await b.reserve(scope, specs, [3, 700, 0], 0)).admitted).toBe(true);
    expect((await b.reserve(scope, specs, [1, 0, 0], 0)).admitted).toBe(false);
    // The usage window got the admitted calls' needs, unlimited buckets included, and nothing of the refused one.
    expect(await b.usage(usage.model, usage.windowMs)).toEqual([2, 300, 14]);

    // Booked within the horizon: each at its own slot, as single reserves would be.
    const paced: Triple<BucketSpec> = [requestBucket(660, 60_000), UNLIMITED, UNLIMITED];
    const spacing = 1 / paced[0].refillPerMs;
    const other = uniqueId("scope");
    await b.reserve(other, paced, [1, 0, 0], 0);
    const booked = await b.reserveMany(other, paced, [[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]], 1000);
    expect(booked.every((o) => o.admitted)).toBe(true);
    const starts = booked.map((o) => o.nowMs + o.waitMs);
    // Redis answers waits to the microsecond.
    for (let i = 1; i < starts.length; i++) expect((starts[i] as number) - (starts[i - 1] as number)).toBeCloseTo(spacing, 2);
  });

  it.skipIf(!available)("reserveMany - a folded settle is applied first, even when the first call is refused", async () => {
    fresh();
    const specs: Triple<BucketSpec> = [UNLIMITED, UNLIMITED, flat(100, 600_000)];
    const usage = { model: uniqueId("model"), windowMs: 60_000 };
    expect((await b.reserve(scope, specs, [1, 0, 100], 0, { usage })).admitted).toBe(true);
    // A give-back of 40 rides on a reserve needing 50: still refused, the 40 kept.
    const refused = await b.reserveMany(scope, specs, [[1, 0, 50], [1, 0, 1]], 0, { usage, settleFirst: { delta: [0, 0, -40], remaining: [undefined, undefined, undefined], used: [0, 0, -40] } });
    expect(refused.map((a) => a.admitted)).toEqual([false]);
    expect((await b.reserve(scope, specs, [1, 0, 40], 0, { usage })).admitted).toBe(true);
    expect(await b.usage(usage.model, usage.windowMs)).toEqual([2, 0, 100]);
  });

  it.skipIf(!available)("settle - unused output is refunded, extra input charged; the provider's remaining only ever lowers a level", async () => {
    fresh();
    const specs: Triple<BucketSpec> = [UNLIMITED, flat(1000, 600_000), flat(1000, 600_000)];
    expect((await b.reserve(scope, specs, [1, 100, 1000], 0)).admitted).toBe(true);
    expect((await b.reserve(scope, specs, [1, 0, 1], 0)).admitted).toBe(false);
    await b.settle(scope, specs, [0, 200, -900]); // used 300 input, 100 output
    expect((await b.reserve(scope, specs, [1, 0, 890], 0)).admitted).toBe(true);
    expect((await b.reserve(scope, specs, [1, 701, 0], 0)).admitted).toBe(false);
    // A remaining above the local level changes nothing; one below it lowers it.
    await b.settle(scope, specs, [0, 0, 0], [undefined, 5000, undefined]);
    expect((await b.reserve(scope, specs, [1, 690, 0], 0)).admitted).toBe(true);
    await b.settle(scope, specs, [0, 0, 0], [undefined, 0, undefined]);
    expect((await b.reserve(scope, specs, [1, 5, 0], 0)).admitted).toBe(false);
  });

  it.skipIf(!available)("penalize - a provider 429 admits nothing until its delay, even in an unlimited scope, then the buckets refill from empty", async () => {
    fresh();
    const limited = bucketSpecs({ rpm: 120, itpm: 1_000_000 }, 240_000); // a request per 2.7 s
    const interval = 1 / limited[0].refillPerMs;
    await b.penalize(scope, limited, 300);
    const during = await b.reserve(scope, limited, [1, 10, 0], 0);
    // The delay, then one request's refill from empty.
    expect(during.admitted).toBe(false);
    expect(during.waitMs).toBeGreaterThan(300 + interval - 500);
    expect(during.waitMs).toBeLessThan(300 + interval + 0.1);
    // A shorter penalty does not cut a longer one short.
    await b.penalize(scope, limited, 10);
    expect((await b.reserve(scope, limited, [1, 10, 0], 0)).waitMs).toBeGreaterThan(interval - 500);
    await sleep(350);
    // Refilled from empty, not full: what refilled since the penalty ended is a small part of a request.
    const after = await b.reserve(scope, limited, [1, 10, 0], 0);
    expect(after.admitted).toBe(false);
    expect(after.waitMs).toBeGreaterThan(interval - 700);
    expect(after.waitMs).toBeLessThan(interval + 0.1);

    const open = uniqueId("scope");
    await b.penalize(open, [UNLIMITED, UNLIMITED, UNLIMITED], 1000);
    expect((await b.reserve(open, [UNLIMITED, UNLIMITED, UNLIMITED], [1, 1e9, 1e9], 0)).admitted).toBe(false);
    await sleep(1050);
    expect((await b.reserve(open, [UNLIMITED, UNLIMITED, UNLIMITED], [1, 1e9, 1e9], 0)).admitted).toBe(true);
  });

  it.skipIf(!available)("window - concurrent reservers never exceed the limit in any window of the limit's length, nor of 1/60 of it", async () => {
    fresh();
    const windowMs = 1200;
    const rpm = 1200; // 20 per 20 ms short window
    const specs = bucketSpecs({ rpm }, windowMs);
    const horizonMs = 5;
    const durationMs = 1600;
    let starts: number[];
    if (subject.shared) {
      const args = {
        ...subject.shared,
        scope,
        specs,
        need: [1, 0, 0],
        horizonMs,
        startAt: Date.now() + 2500,
        durationMs,
        concurrency: 3,
      };
      const children = [childReserver(args), childReserver(args)];
      await sleep(args.startAt - Date.now());
      const mine = await hammer(b, scope, specs, [1, 0, 0], durationMs, 3, horizonMs);
      const theirs = await Promise.all(children);
      expect(theirs.every((s) => s.length > 0), "both child processes got admissions").toBe(true);
      starts = [...mine, ...theirs.flat()];
    } else {
      starts = await hammer(b, scope, specs, [1, 0, 0], durationMs, 6, horizonMs);
    }
    expect(peak(starts, windowMs)).toBeLessThanOrEqual(rpm);
    expect(peak(starts, windowMs / 60)).toBeLessThanOrEqual(rpm / 60);
    // And the limit was what held the reservers back (more than half its refill used, even on a busy machine).
    expect(starts.length).toBeGreaterThanOrEqual(0.3 * specs[0].refillPerMs * durationMs);
    void name;
  }, 20_000);
});
