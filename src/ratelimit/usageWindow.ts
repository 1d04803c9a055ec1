/**
 * What the cluster's calls took of each model's limits over the last window, for
 * `GET /v1/limits`: two fixed windows (the current one and the one before) and the
 * sliding estimate `current + previous × (share of the previous window still inside
 * the last window_ms)`, so the figure neither drops to zero at a window's start nor
 * counts a call twice. `MemoryBuckets` runs this in process;
 * lua/addUsage-1.lua and lua/readUsage-1.lua are the same arithmetic inside Redis.
 *
 * The limiter adds a call's reservation when it is admitted and the difference to
 * its actual usage when it settles, as it charges the buckets: a call in flight
 * counts with its reservation.
 */
import type { Triple } from "./limits";

type Amounts = [number, number, number];

export interface UsageState {
  /** Index of the current window: ⌊ms / windowMs⌋. */
  window: number;
  current: Amounts;
  previous: Amounts;
}

export function freshUsage(): UsageState {
  return { window: -Infinity, current: [0, 0, 0], previous: [0, 0, 0] };
}

/** Moves the state to the window holding `now`. */
function roll(s: UsageState, now: number, windowMs: number): void {
  const w = Math.floor(now / windowMs);
  if (w === s.window) return;
  s.previous = w === s.window + 1 ? s.current : [0, 0, 0];
  s.current = [0, 0, 0];
  s.window = w;
}

export function addUsage(s: UsageState, delta: Triple<number>, now: number, windowMs: number): void {
  roll(s, now, windowMs);
  s.current = [s.current[0] + delta[0], s.current[1] + delta[1], s.current[2] + delta[2]];
}

/** Used over the last `windowMs`: never below 0 (a refund may land in the window after its reservation). */
export function usedOver(s: UsageState, now: number, windowMs: number): Triple<number> {
  const copy: UsageState = { window: s.window, current: [...s.current], previous: [...s.previous] };
  roll(copy, now, windowMs);
  const left = 1 - (now - copy.window * windowMs) / windowMs;
  const used = (j: 0 | 1 | 2) => Math.max(0, copy.current[j] + copy.previous[j] * left);
  return [used(0), used(1), used(2)];
}
