/**
 * sequential test - the canary judge's one-sided mSPRT (src/rollout/sequentialTest.ts):
 * its closed form is the mixture it claims to be, it grows with the evidence of harm,
 * a deterministic stream (variance 0) still gives a finite statistic, and on simulated
 * streams looked at after every single task it keeps its false-alarm bound where a
 * t-test read the same way does not, while clear harm is caught within a few tasks.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { harmTest, logMixtureRatio, logNormalCdf, summarize, type HarmTestSpec, type Moments } from "../../src/rollout/sequentialTest";
import { DrawSequence } from "../../src/sim/random";

const moments = (xs: readonly number[]): Moments => ({ n: xs.length, sum: xs.reduce((a, b) => a + b, 0), sumSq: xs.reduce((a, b) => a + b * b, 0) });
const add = (m: Moments, x: number): void => {
  m.n += 1;
  m.sum += x;
  m.sumSq += x * x;
};
const empty = (): Moments => ({ n: 0, sum: 0, sumSq: 0 });

/** Seeded standard normal draws (Box-Muller over the simulator's deterministic uniforms). */
function normals(seed: number): () => number {
  const u = new DrawSequence(seed, 7);
  return () => Math.sqrt(-2 * Math.log(1 - u.next())) * Math.cos(2 * Math.PI * u.next());
}

/** Tool calls per task as a policy like the order-router's makes them: about 6, never fewer than 3. */
const toolCalls = (z: () => number) => () => Math.max(3, Math.round(6 + z()));

/** The tool-call metric's test, as the judge configures it (tolerance max(0.5, 20 %), τ = tolerance). */
function toolCallSpec(stable: Moments, alpha: number): HarmTestSpec {
  const tolerance = Math.max(0.5, (0.2 * stable.sum) / Math.max(1, stable.n));
  return { direction: "higher_is_worse", tolerance, tau: tolerance, varianceFloor: 0.25, alpha, minSamples: 5 };
}

/** A two-sample z statistic on canary − stable − tolerance: the fixed-sample test, for contrast. */
function zStatistic(c: Moments, s: Moments, tolerance: number): number {
  const a = summarize(c, 1e-9);
  const b = summarize(s, 1e-9);
  return (a.mean - b.mean - tolerance) / Math.sqrt(a.variance / a.n + b.variance / b.n);
}

interface Run {
  rejected: boolean;
  /** Canary tasks seen when it was rejected. */
  at: number;
}

/**
 * One canary stream at 5 % of the traffic (19 stable tasks per canary task), tested after every task
 * up to `tasks` canary tasks; `shift` is added to every canary value.
 */
function monitor(seed: number, tasks: number, shift: number, reject: (c: Moments, s: Moments) => boolean): Run {
  const draw = toolCalls(normals(seed));
  const c = empty();
  const s = empty();
  for (let i = 1; i <= tasks; i++) {
    add(c, draw() + shift);
    for (let j = 0; j < 19; j++) add(s, draw());
    if (c.n >= 5 && reject(c, s)) return { rejected: true, at: i };
  }
  return { rejected: false, at: tasks };
}

const RUNS = 2000;
const TASKS = 300;
const ALPHA = 0.0125;

describe("sequential test - mSPRT", () => {
  it("log Φ matches reference values in both tails", () => {
    expect(Math.exp(logNormalCdf(0))).toBeCloseTo(0.5, 6);
    expect(Math.exp(logNormalCdf(1.959964))).toBeCloseTo(0.975, 6);
    expect(Math.exp(logNormalCdf(-1.959964))).toBeCloseTo(0.025, 6);
    // Φ(−5) = 2.8665e-7, Φ(−30) = 4.906e-198 (log −454.3): no underflow to −Infinity.
    expect(Math.exp(logNormalCdf(-5)) / 2.8665157e-7).toBeCloseTo(1, 4);
    expect(logNormalCdf(-30)).toBeCloseTo(Math.log(4.906713927e-198), 3);
    expect(logNormalCdf(40)).toBeCloseTo(0, 12);
  });

  it("the closed form is the half-normal mixture of likelihood ratios it stands for", () => {
    fc.assert(
      fc.property(
        fc.double({ min: -3, max: 3, noNaN: true }),
        fc.double({ min: 0.01, max: 4, noNaN: true }),
        fc.double({ min: 0.05, max: 3, noNaN: true }),
        (x, v, tau) => {
          // ∫_0^∞ 2 φ(μ/τ)/τ · exp(μ S − μ² t / 2) dμ with t = 1/v, S = x t, by the midpoint rule.
          const t = 1 / v;
          const S = x * t;
          const top = tau * 12 + Math.abs(x) * 4;
          const steps = 20_000;
          const h = top / steps;
          let sum = 0;
          for (let i = 0; i < steps; i++) {
            const mu = (i + 0.5) * h;
            sum += ((2 / (tau * Math.sqrt(2 * Math.PI))) * Math.exp(-(mu * mu) / (2 * tau * tau)) * Math.exp(mu * S - (mu * mu * t) / 2)) * h;
          }
          expect(logMixtureRatio(x, v, tau)).toBeCloseTo(Math.log(sum), 3);
        },
      ),
      { numRuns: 60, seed: 1 },
    );
  });

  it("grows with the estimated harm and shrinks with its uncertainty", () => {
    fc.assert(
      fc.property(
        fc.double({ min: -5, max: 5, noNaN: true }),
        fc.double({ min: 0.001, max: 2, noNaN: true }),
        fc.double({ min: 0.01, max: 2, noNaN: true }),
        fc.double({ min: 0.1, max: 2, noNaN: true }),
        (x, dx, v, tau) => {
          expect(logMixtureRatio(x + dx, v, tau)).toBeGreaterThan(logMixtureRatio(x, v, tau));
          // More harm than the tolerance is more convincing the more precisely it is measured.
          if (x > 0.5) expect(logMixtureRatio(x, v / 2, tau)).toBeGreaterThan(logMixtureRatio(x, v, tau));
        },
      ),
      { numRuns: 500, seed: 2 },
    );
  });

  it("a deterministic stream (variance 0) gives a finite statistic: equal arms never reject, a shift beyond the tolerance does", () => {
    const spec: HarmTestSpec = { direction: "higher_is_worse", tolerance: 1.2, tau: 1.2, varianceFloor: 0.25, alpha: ALPHA, minSamples: 5 };
    for (let n = 5; n <= 500; n += 5) {
      const same = harmTest(moments(Array(n).fill(6)), moments(Array(n * 19).fill(6)), spec);
      expect(Number.isFinite(same.logLambda)).toBe(true);
      expect(same.harmful).toBe(false);
    }
    const worse = harmTest(moments(Array(5).fill(12)), moments(Array(95).fill(6)), spec);
    expect(Number.isFinite(worse.logLambda)).toBe(true);
    expect(worse).toMatchObject({ harm: 6, harmful: true });
    // Too few tasks in an arm: no verdict at all.
    expect(harmTest(moments(Array(4).fill(12)), moments(Array(95).fill(6)), spec)).toMatchObject({ logLambda: -Infinity, harmful: false });
  });

  it("lower-is-worse metrics test the other direction", () => {
    const spec: HarmTestSpec = { direction: "lower_is_worse", tolerance: 0.05, tau: 0.2, varianceFloor: 0.01, alpha: ALPHA, minSamples: 5 };
    const stable = moments([...Array(95).fill(1), ...Array(5).fill(0)]);
    expect(harmTest(moments([1, 1, 0, 0, 0, 0, 0, 0, 0, 0]), stable, spec)).toMatchObject({ harmful: true });
    expect(harmTest(moments(Array(40).fill(1)), stable, spec)).toMatchObject({ harmful: false });
  });

  // Every run is looked at after every canary task (300 looks): the worst case of peeking.
  const harmless = Array.from({ length: RUNS }, (_, k) => monitor(1000 + k, TASKS, 0, (c, s) => harmTest(c, s, toolCallSpec(s, ALPHA)).harmful));
  const boundary = Array.from({ length: RUNS }, (_, k) => monitor(5000 + k, TASKS, 1.2, (c, s) => harmTest(c, s, toolCallSpec(s, ALPHA)).harmful));
  const peekedZ = Array.from({ length: RUNS }, (_, k) => monitor(5000 + k, TASKS, 1.2, (c, s) => zStatistic(c, s, toolCallSpec(s, ALPHA).tolerance) > 2.241));
  const rate = (runs: Run[]) => runs.filter((r) => r.rejected).length / runs.length;

  it(`no harm, looked at after every task: false alarms in ${rate(harmless)} of ${RUNS} runs (bound α = ${ALPHA})`, () => {
    expect(rate(harmless)).toBeLessThanOrEqual(ALPHA);
  });

  it(`harm exactly at the tolerance (the null's edge): false alarms in ${rate(boundary)} of ${RUNS} runs (bound α = ${ALPHA})`, () => {
    expect(rate(boundary)).toBeLessThanOrEqual(ALPHA);
  });

  it(`a one-sided z-test at the same α, peeked at after every task, raises false alarms in ${rate(peekedZ)} of the same runs`, () => {
    // Why a fixed-sample test will not do: each look spends α again.
    expect(rate(peekedZ)).toBeGreaterThan(3 * ALPHA);
  });

  it("clear harm is rejected within a few canary tasks in every run", () => {
    // +2 tool calls per task beyond a tolerance of 1.2 (the tool-call rise of a prompt that checks twice).
    const runs = Array.from({ length: 500 }, (_, k) => monitor(9000 + k, TASKS, 3.2, (c, s) => harmTest(c, s, toolCallSpec(s, ALPHA)).harmful));
    expect(rate(runs)).toBe(1);
    const at = runs.map((r) => r.at).sort((a, b) => a - b);
    expect(at[Math.floor(at.length / 2)]).toBeLessThanOrEqual(8);
    expect(at.at(-1)).toBeLessThanOrEqual(25);
  });
});
