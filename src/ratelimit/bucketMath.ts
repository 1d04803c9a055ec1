/**
 * The bucket arithmetic, as pure functions of a state and a clock. `MemoryBuckets`
 * runs it in process; `lua/*.lua` is the same arithmetic, line for line, inside
 * Redis (effective() is lua/includes/effective.lua, refill() lua/includes/refill.lua,
 * msUntilFull() the expiry in lua/includes/store.lua). The contract suite holds
 * both to it.
 *
 * - Refill is continuous, capped at capacity, and starts at `ts` (a 429 penalty
 *   moves `ts` into the future: nothing refills until then).
 * - A call is admitted when every limited bucket holds its need: no window then
 *   holds more than capacity + refill × window. A call needing N above a bucket's
 *   capacity C must not fit in the window before it nor in the one after it with
 *   more than the refill: it starts once the refill (uncapped while it is booked)
 *   reaches N, and is charged N + (N − C), leaving a debt of N − C behind it.
 *   A call kept waiting by one bucket forfeits the refill the others could not
 *   have held meanwhile (charge()), so a booking never stretches a window.
 * - Admission may be booked up to `horizonMs` ahead (plus that excess): the levels
 *   are charged now (into debt) and the caller starts at now + wait. Booking keeps
 *   the refill from being capped while callers sleep, so timer lateness never
 *   loses capacity.
 * - The state keeps the shape of each bucket someone limited. A caller that knows
 *   no limit for a bucket (a gateway that has not yet learned the provider's) is
 *   held to that shape, and never overwrites the level or shortens the expiry.
 */
import type { BucketSpec, Triple } from "./limits";

type Levels = [number | undefined, number | undefined, number | undefined];

export interface BucketState {
  /** Refill clock, ms; ahead of now while a provider 429 penalty lasts. */
  ts: number;
  /** Undefined: never limited, so full once a limit applies. */
  levels: Levels;
  /** The shape each bucket was last limited with (capacity 0: never limited). */
  shape: [BucketSpec, BucketSpec, BucketSpec];
}

export interface ReserveOutcome {
  admitted: boolean;
  /** Until the call may start (admitted); refused: it could be booked `waitMs − horizonMs` from now. */
  waitMs: number;
  /** The bucket clock's now, ms. */
  nowMs: number;
}

const NEVER: BucketSpec = { capacity: 0, refillPerMs: 0 };
const J = [0, 1, 2] as const;

export function freshState(now: number): BucketState {
  return { ts: now, levels: [undefined, undefined, undefined], shape: [NEVER, NEVER, NEVER] };
}

/** The caller's limit where it has one, else the shape stored by whoever limited the bucket. */
function effective(s: BucketState, specs: Triple<BucketSpec>): Triple<BucketSpec> {
  const pick = (j: 0 | 1 | 2): BucketSpec => (specs[j].capacity > 0 ? specs[j] : s.shape[j]);
  return [pick(0), pick(1), pick(2)];
}

function refill(s: BucketState, eff: Triple<BucketSpec>, now: number): void {
  for (const j of J) {
    const spec = eff[j];
    if (spec.capacity <= 0) continue;
    let level = Math.min(spec.capacity, s.levels[j] ?? spec.capacity);
    if (now > s.ts) level = Math.min(spec.capacity, level + (now - s.ts) * spec.refillPerMs);
    s.levels[j] = level;
    s.shape[j] = spec;
  }
  if (now > s.ts) s.ts = now;
}

export function reserve(s: BucketState, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number, now: number): ReserveOutcome {
  const eff = effective(s, specs);
  refill(s, eff, now);
  const base = Math.max(0, s.ts - now);
  let wait = base;
  let excess = 0;
  for (const j of J) {
    const spec = eff[j];
    const n = need[j];
    if (spec.capacity <= 0 || n <= 0) continue;
    const level = s.levels[j] ?? 0;
    if (level < n) wait = Math.max(wait, base + (n - level) / spec.refillPerMs);
    if (n > spec.capacity) excess = Math.max(excess, (n - spec.capacity) / spec.refillPerMs);
  }
  if (wait > horizonMs + excess) return { admitted: false, waitMs: wait - excess, nowMs: now };
  for (const j of J) {
    const spec = eff[j];
    if (spec.capacity <= 0) continue;
    const level = s.levels[j] ?? 0;
    s.levels[j] = level - charge(level, spec, need[j], spec.refillPerMs * Math.max(0, wait - base));
  }
  return { admitted: true, waitMs: wait, nowMs: now };
}

/**
 * What a booked call takes from a bucket holding `level` that refills `refilled`
 * until the call starts: its need, the excess over the capacity once more (the
 * debt it leaves), and whatever refill the bucket could not have held by then
 * (capped at the capacity, or at the need of a call above it): a call kept
 * waiting by another bucket gets no more of this one than if it started now.
 */
function charge(level: number, spec: BucketSpec, n: number, refilled: number): number {
  return n + Math.max(0, n - spec.capacity) + Math.max(0, level + refilled - Math.max(spec.capacity, n));
}

/** Charges (positive) or refunds (negative) the difference to actual usage; the provider's `remaining` caps the levels. */
export function settle(s: BucketState, specs: Triple<BucketSpec>, delta: Triple<number>, remaining: Triple<number | undefined>, now: number): void {
  const eff = effective(s, specs);
  refill(s, eff, now);
  for (const j of J) {
    const spec = eff[j];
    if (spec.capacity <= 0) continue;
    let level = Math.min(spec.capacity, (s.levels[j] ?? 0) - delta[j]);
    const r = remaining[j];
    if (r !== undefined && r >= 0) level = Math.min(level, r);
    s.levels[j] = level;
  }
}

/** A provider 429: nothing is admitted before now + delayMs, and the buckets restart empty then. */
export function penalize(s: BucketState, specs: Triple<BucketSpec>, delayMs: number, now: number): void {
  const eff = effective(s, specs);
  refill(s, eff, now);
  const until = now + delayMs;
  if (until <= s.ts) return;
  s.ts = until;
  for (const j of J) if (eff[j].capacity > 0) s.levels[j] = Math.min(s.levels[j] ?? 0, 0);
}

/** How long an untouched state takes to become indistinguishable from a fresh (full) one. */
export function msUntilFull(s: BucketState, now: number): number {
  let fill = 0;
  for (const j of J) {
    const spec = s.shape[j];
    if (spec.capacity > 0) fill = Math.max(fill, (spec.capacity - (s.levels[j] ?? spec.capacity)) / spec.refillPerMs);
  }
  return Math.max(0, s.ts - now) + fill;
}
