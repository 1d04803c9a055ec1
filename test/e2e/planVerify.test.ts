/**
 * plan --verify - `clawfleet plan --verify` as a real process: it starts the simulated model and an embedded
 * node (child processes), plays the scaled-down load on them, and sets the prediction beside what it measured.
 * Tolerances (stated in README, "Capacity planning"): model calls per minute within ±30% of the prediction,
 * every task succeeded, no 429, and a submit → started delay under a second for a load that fits; a saturated
 * load is flagged as such, predicted and measured.
 */
import { describe, expect, it } from "vitest";
import { spawnCaptured } from "../../testkit/cluster";

interface Row {
  figure: string;
  predicted: number | null;
  measured: number;
  relative_error: number | null;
}

interface Verified {
  fits: boolean;
  verify: {
    measured: { submitted: number; succeeded: number; rateLimited: number; queueDelayMean: number; notStarted: number };
    rows: Row[];
    predicted_saturated: boolean;
    measured_saturated: boolean;
  };
}

/** 36,000 tasks/h × 0.1 = one task a second for 20 s, each 3 model calls of 0.2 s and 2 tool calls of 50 ms. */
const LOAD = ["--tasks-per-hour", "36000", "--calls-per-task", "3", "--latency", "200ms", "--tool-latency", "50ms", "--input-tokens", "500", "--output-tokens", "100"];
const RUN = ["--planner-slots", "4", "--verify", "--scale", "0.1", "--seconds", "20", "--json"];

async function verify(limits: string[]): Promise<{ code: number | null; result: Verified; output: string }> {
  const p = spawnCaptured(["bin/clawfleet.js", "plan", ...LOAD, ...limits, ...RUN], {});
  const { code } = await p.exited;
  const output = p.output();
  const json = output.slice(output.indexOf("\n{") + 1);
  let result: Verified;
  try {
    result = JSON.parse(json) as Verified;
  } catch {
    throw new Error(`no JSON from clawfleet plan --verify (exit ${code}):\n${output.slice(-4000)}`);
  }
  return { code, result, output };
}

const row = (r: Verified, prefix: string): Row => {
  const found = r.verify.rows.find((x) => x.figure.startsWith(prefix));
  if (!found) throw new Error(`no row "${prefix}"`);
  return found;
};

describe("plan --verify - the prediction against a real embedded node and the simulated model", () => {
  it("a load that fits (180 calls/min against 1,000 RPM): measured within tolerance of the prediction", { timeout: 300_000 }, async () => {
    const { code, result, output } = await verify(["--rpm", "10000"]);
    expect(code, output.slice(-3000)).toBe(0);
    expect(result.fits).toBe(true);
    const m = result.verify.measured;
    expect(m.submitted).toBeGreaterThanOrEqual(10);
    expect(m.succeeded, JSON.stringify(m)).toBe(m.submitted);
    expect(m.rateLimited).toBe(0);
    expect(m.queueDelayMean).toBeLessThan(1);
    const calls = row(result, "model calls/min");
    expect(Math.abs(calls.relative_error ?? Infinity), JSON.stringify(calls)).toBeLessThanOrEqual(0.3);
    expect(row(result, "tasks succeeded").measured).toBe(row(result, "tasks succeeded").predicted);
    expect(result.verify.predicted_saturated).toBe(false);
    expect(result.verify.measured_saturated).toBe(false);
  });

  it("a saturated load (180 calls/min against 90 RPM): flagged saturated, predicted and measured, calls held to the limit", { timeout: 300_000 }, async () => {
    const { code, result, output } = await verify(["--rpm", "900"]);
    // --verify exits 0 whenever it ran, whatever it found.
    expect(code, output.slice(-3000)).toBe(0);
    expect(result.fits).toBe(false);
    expect(result.verify.predicted_saturated).toBe(true);
    expect(result.verify.measured_saturated).toBe(true);
    const m = result.verify.measured;
    expect(m.succeeded).toBeLessThan(m.submitted);
    const calls = row(result, "model calls/min");
    // Held to the limit (90 a minute, plus the first window's burst of 10 over 20 s: 120), under the 180 offered.
    expect(calls.predicted).toBeCloseTo(120, 0);
    expect(calls.measured, JSON.stringify(calls)).toBeLessThanOrEqual(120 * 1.1);
    expect(m.rateLimited).toBe(0);
  });
});
