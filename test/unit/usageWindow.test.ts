/**
 * usage window - what `GET /v1/limits` reports as used: the current fixed window
 * plus the share of the previous one still inside the last window, never below 0.
 */
import { describe, expect, it } from "vitest";
import { addUsage, freshUsage, usedOver } from "../../src/ratelimit/usageWindow";

const W = 60_000;
const T0 = 1_000 * W; // the start of a window

describe("usage window - the sliding figure of GET /v1/limits", () => {
  it("sums what is added within one window", () => {
    const s = freshUsage();
    addUsage(s, [1, 100, 50], T0 + 10, W);
    addUsage(s, [1, 200, 80], T0 + 20_000, W);
    expect(usedOver(s, T0 + 30_000, W)).toEqual([2, 300, 130]);
  });

  it("counts the previous window by the share of it still inside the last window", () => {
    const s = freshUsage();
    addUsage(s, [4, 400, 40], T0 + 50_000, W);
    // A quarter into the next window: three quarters of the previous one are still inside the last minute.
    expect(usedOver(s, T0 + W + W / 4, W)).toEqual([3, 300, 30]);
    addUsage(s, [1, 10, 1], T0 + W + W / 4, W);
    expect(usedOver(s, T0 + W + W / 2, W)).toEqual([3, 210, 21]);
  });

  it("forgets what is more than a window old", () => {
    const s = freshUsage();
    addUsage(s, [5, 500, 50], T0 + 1, W);
    expect(usedOver(s, T0 + 2 * W + 1, W)).toEqual([0, 0, 0]);
    addUsage(s, [1, 1, 1], T0 + 3 * W, W);
    expect(usedOver(s, T0 + 3 * W, W)).toEqual([1, 1, 1]);
  });

  it("a refund landing after its reservation's window never shows below zero", () => {
    const s = freshUsage();
    addUsage(s, [1, 100, 200], T0 + W - 1, W);
    addUsage(s, [0, 0, -190], T0 + 2 * W - 1, W);
    expect(usedOver(s, T0 + 2 * W - 1, W).every((n) => n >= 0)).toBe(true);
    expect(usedOver(s, T0 + 2 * W - 1, W)[2]).toBe(0);
  });
});
