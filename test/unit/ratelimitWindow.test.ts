/**
 * ratelimit window - the shipped bucket shapes (bucketSpecs) hold every limit in
 * every sliding window of the limit's length, for requests, input tokens and
 * output tokens alike, whatever the mix of call sizes (calls larger than a
 * bucket's capacity included), arrival pattern, latency and refunds of unused
 * `max_tokens`. Event-driven on a simulated clock: no timing, no sleeping.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryBuckets, bucketSpecs, type Triple } from "../../src/ratelimit";
import { fuzzSettings } from "../fuzz/settings";

const WINDOW_MS = 60_000;
const HORIZON_MS = 10;

interface Call {
  gapMs: number;
  input: number;
  maxOut: number;
  /** Share of `maxOut` actually produced. */
  outShare: number;
  latencyMs: number;
}

interface Limits {
  rpm: number;
  itpm: number;
  otpm: number;
}

interface Started {
  at: number;
  used: Triple<number>;
}

/** Runs the calls through one scope's buckets as a gateway would: reserve (retrying when told), start at the booked time, settle after the latency. */
async function run(limits: Limits, calls: readonly Call[]): Promise<Started[]> {
  let clock = 0;
  const buckets = new MemoryBuckets(() => clock);
  const specs = bucketSpecs(limits, WINDOW_MS);
  type Event = { at: number; seq: number; go: () => Promise<void> };
  const events: Event[] = [];
  let seq = 0;
  const at = (t: number, go: () => Promise<void>) => events.push({ at: t, seq: seq++, go });
  const started: Started[] = [];
  const attempt = (c: Call) => async () => {
    const out = await buckets.reserve("m", specs, [1, c.input, c.maxOut], HORIZON_MS);
    if (!out.admitted) return void at(clock + Math.max(0.001, out.waitMs - HORIZON_MS), attempt(c));
    const start = clock + out.waitMs;
    const produced = Math.floor(c.maxOut * c.outShare);
    started.push({ at: start, used: [1, c.input, produced] });
    at(start + c.latencyMs, () => buckets.settle("m", specs, [0, 0, produced - c.maxOut]));
  };
  let arrival = 0;
  for (const c of calls) at((arrival += c.gapMs), attempt(c));
  while (events.length > 0) {
    events.sort((a, b) => a.at - b.at || a.seq - b.seq);
    const next = events.shift() as Event;
    clock = Math.max(clock, next.at);
    await next.go();
  }
  return started;
}

/** Largest sum of `used[j]` over the calls starting in any window [t, t + len). */
function peak(started: readonly Started[], j: 0 | 1 | 2, len: number): number {
  const s = [...started].sort((a, b) => a.at - b.at);
  let best = 0;
  let sum = 0;
  let lo = 0;
  for (const x of s) {
    sum += x.used[j];
    while ((s[lo] as Started).at <= x.at - len) sum -= (s[lo++] as Started).used[j];
    best = Math.max(best, sum);
  }
  return best;
}

const limitsArb = fc.record({ rpm: fc.integer({ min: 60, max: 3000 }), itpm: fc.integer({ min: 600, max: 200_000 }), otpm: fc.integer({ min: 600, max: 80_000 }) });

function callsArb(l: Limits): fc.Arbitrary<Call[]> {
  // Mostly calls within a bucket's capacity (1/60 of the limit), some up to the whole limit.
  const size = (limit: number) => fc.oneof({ arbitrary: fc.integer({ min: 1, max: Math.max(1, Math.floor(limit / 60)) }), weight: 4 }, { arbitrary: fc.integer({ min: 1, max: limit }), weight: 1 });
  const call = fc.record({
    gapMs: fc.oneof(fc.constant(0), fc.double({ min: 0, max: WINDOW_MS / 30, noNaN: true })),
    input: size(l.itpm),
    maxOut: size(l.otpm),
    outShare: fc.double({ min: 0, max: 1, noNaN: true }),
    latencyMs: fc.double({ min: 0, max: WINDOW_MS / 120, noNaN: true }),
  });
  return fc.array(call, { minLength: 20, maxLength: 150 });
}

describe("ratelimit window - the bucket shapes", () => {
  it("no sliding window of the limit's length admits more requests, input tokens or output tokens than the limit", async () => {
    await fc.assert(
      fc.asyncProperty(
        limitsArb.chain((l) => fc.tuple(fc.constant(l), callsArb(l))),
        async ([limits, calls]) => {
          const started = await run(limits, calls);
          expect(started).toHaveLength(calls.length);
          expect(peak(started, 0, WINDOW_MS), "requests").toBeLessThanOrEqual(limits.rpm);
          expect(peak(started, 1, WINDOW_MS), "input tokens").toBeLessThanOrEqual(limits.itpm);
          expect(peak(started, 2, WINDOW_MS), "output tokens").toBeLessThanOrEqual(limits.otpm);
        },
      ),
      // A fixed seed, as the fuzz suites have: CI replays the same cases. CLAWFLEET_FUZZ_SEED and
      // CLAWFLEET_FUZZ_RUNS explore others (another seed can meet the known defect below).
      fuzzSettings("ratelimit window", 150, 20261204),
    );
  });

  it("a burst of small calls into full token buckets gets at most the limit in the first window (not capacity plus a window of refill)", async () => {
    const limits = { rpm: 100_000, itpm: 60_000, otpm: 60_000 };
    const calls = Array.from({ length: 400 }, (): Call => ({ gapMs: 0, input: 400, maxOut: 10, outShare: 1, latencyMs: 0 }));
    const started = await run(limits, calls);
    expect(peak(started, 1, WINDOW_MS)).toBeLessThanOrEqual(limits.itpm);
    // And the limit is what paces them: nearly all of it is used.
    expect(peak(started, 1, WINDOW_MS)).toBeGreaterThan(0.95 * limits.itpm);
  });
  // Known defect, found by the property above (seed -1392035263): a refund that lands while a call above the
  // bucket's capacity is booked ahead (its debt already taken) is credited in full, though the bucket had
  // refilled to its capacity meanwhile and could not have held it. Here call 3's 743 unused tokens come back
  // after the 47,490-token call is booked, and the window that starts with that call admits one token over
  // the limit. Recorded as failing until the buckets account refunds against what they could hold. The plain
  // fix (credit nothing before a booked over-capacity call's start: it starts with exactly C − N left) is
  // correct for the window but drops every refund while such a call is pending, which under steady load with
  // `max_tokens` above 1/60 of the limit is nearly always: it would charge each call its full `max_tokens`.
  // Booked starts would have to move earlier with refunds instead.
  it.fails("known defect - a refund during a booked over-capacity call is credited beyond what the bucket could hold", async () => {
    const limits = { rpm: 2230, itpm: 143_863, otpm: 47_799 };
    const small = (maxOut: number, gapMs = 0): Call => ({ gapMs, input: 1, maxOut, outShare: 0, latencyMs: 0 });
    const calls: Call[] = [small(1), small(2350), small(1), { ...small(743), input: 11_930 }, small(1), small(1), small(1), small(1, 1.1939156673009848)];
    for (let i = 0; i < 9; i++) calls.push(small(1));
    calls.push({ gapMs: 0, input: 1, maxOut: 47_490, outShare: 0.9999789429353548, latencyMs: 0 }, small(1), { gapMs: 0, input: 1, maxOut: 312, outShare: 0.9967948717948718, latencyMs: 0 });
    const started = await run(limits, calls);
    expect(peak(started, 2, WINDOW_MS)).toBeLessThanOrEqual(limits.otpm);
  });
});
