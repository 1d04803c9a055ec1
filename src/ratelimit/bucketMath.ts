/**
 * The bucket arithmetic, as pure functions of a state and a clock. `MemoryBuckets`
 * runs it in process; `lua/*.lua` is the same arithmetic, line for line, inside
 * Redis (refill() is lua/includes/refill.lua, msUntilFull() the expiry in
 * lua/includes/store.lua). The contract suite holds both to it.
 *
 * - Refill is continuous, capped at capacity, and starts at `ts` (a 429 penalty
 *   moves `ts` into the future: nothing refills until then).
 * - A call is admitted when every limited bucket holds min(need, capacity): a call
 *   larger than the capacity goes from a full bucket and leaves it in debt.
 * - Admission may be booked up to `horizonMs` ahead: the levels are charged now
 *   (into debt) and the caller starts at now + wait. Booking keeps the refill from
 *   being capped while callers sleep, so timer lateness never loses capacity.
 */
import type { BucketSpec, Triple } from "./limits";

export interface BucketState {
  /** Refill clock, ms; ahead of now while a provider 429 penalty lasts. */
  ts: number;
  levels: [number, number, number];
}

export interface ReserveOutcome {
  admitted: boolean;
  /** Until the call may start (admitted), or until it could be admitted (refused). */
  waitMs: number;
  /** The bucket clock's now, ms. */
  nowMs: number;
}

export function fullState(specs: Triple<BucketSpec>, now: number): BucketState {
  return { ts: now, levels: [specs[0].capacity, specs[1].capacity, specs[2].capacity] };
}

function refill(s: BucketState, specs: Triple<BucketSpec>, now: number): void {
  for (let j = 0; j < 3; j++) {
    const spec = specs[j as 0 | 1 | 2];
    if (spec.capacity <= 0) {
      s.levels[j] = 0;
      continue;
    }
    let level = Math.min(spec.capacity, s.levels[j] ?? spec.capacity);
    if (now > s.ts) level = Math.min(spec.capacity, level + (now - s.ts) * spec.refillPerMs);
    s.levels[j] = level;
  }
  if (now > s.ts) s.ts = now;
}

export function reserve(s: BucketState, specs: Triple<BucketSpec>, need: Triple<number>, horizonMs: number, now: number): ReserveOutcome {
  refill(s, specs, now);
  const base = Math.max(0, s.ts - now);
  let wait = base;
  for (let j = 0; j < 3; j++) {
    const spec = specs[j as 0 | 1 | 2];
    const n = need[j as 0 | 1 | 2];
    if (spec.capacity <= 0 || n <= 0) continue;
    const target = Math.min(n, spec.capacity);
    const level = s.levels[j] ?? 0;
    if (level < target) wait = Math.max(wait, base + (target - level) / spec.refillPerMs);
  }
  if (wait > horizonMs) return { admitted: false, waitMs: wait, nowMs: now };
  for (let j = 0; j < 3; j++) if (specs[j as 0 | 1 | 2].capacity > 0) s.levels[j] = (s.levels[j] ?? 0) - need[j as 0 | 1 | 2];
  return { admitted: true, waitMs: wait, nowMs: now };
}

/** Charges (positive) or refunds (negative) the difference to actual usage; the provider's `remaining` caps the levels. */
export function settle(s: BucketState, specs: Triple<BucketSpec>, delta: Triple<number>, remaining: Triple<number | undefined>, now: number): void {
  refill(s, specs, now);
  for (let j = 0; j < 3; j++) {
    const spec = specs[j as 0 | 1 | 2];
    if (spec.capacity <= 0) continue;
    let level = Math.min(spec.capacity, (s.levels[j] ?? 0) - delta[j as 0 | 1 | 2]);
    const r = remaining[j as 0 | 1 | 2];
    if (r !== undefined && r >= 0) level = Math.min(level, r);
    s.levels[j] = level;
  }
}

/** A provider 429: nothing is admitted before now + delayMs, and the buckets restart empty then. */
export function penalize(s: BucketState, specs: Triple<BucketSpec>, delayMs: number, now: number): void {
  refill(s, specs, now);
  const until = now + delayMs;
  if (until <= s.ts) return;
  s.ts = until;
  for (let j = 0; j < 3; j++) if (specs[j as 0 | 1 | 2].capacity > 0) s.levels[j] = Math.min(s.levels[j] ?? 0, 0);
}

/** How long an untouched state takes to become indistinguishable from a fresh (full) one. */
export function msUntilFull(s: BucketState, specs: Triple<BucketSpec>, now: number): number {
  let ms = Math.max(0, s.ts - now);
  let fill = 0;
  for (let j = 0; j < 3; j++) {
    const spec = specs[j as 0 | 1 | 2];
    if (spec.capacity > 0) fill = Math.max(fill, (spec.capacity - (s.levels[j] ?? 0)) / spec.refillPerMs);
  }
  ms += fill;
  return ms;
}
