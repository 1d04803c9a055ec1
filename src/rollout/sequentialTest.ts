/**
 * A one-sided mixture sequential probability ratio test (mSPRT; Johari, Pekelis
 * and Walsh, "Always valid inference", 2017) on the difference between two means,
 * canary − stable, for one metric of a canary rollout.
 *
 * The judge looks at a canary every second, so a test that is only valid at one
 * planned sample size (a t-test) would be peeked at thousands of times, and its
 * false-alarm rate would grow with every look. The mSPRT's statistic is a
 * nonnegative martingale under the null hypothesis, so by Ville's inequality the
 * chance that it *ever* crosses 1/α is at most α: it may be read after every task,
 * forever, and stopped at any time.
 *
 * Hypotheses, on the harm scale `h = sign · (mean_canary − mean_stable)` (sign −1
 * for a metric where lower is worse): H0 `h ≤ tolerance` (no harm beyond the
 * tolerance) against H1 `h > tolerance`. The estimate `ĥ` is approximately normal
 * with variance `v = σ²_c/n_c + σ²_s/n_s`; in information time `t = 1/v`,
 * `S = (ĥ − tolerance)·t` behaves as Brownian motion with drift `h − tolerance`.
 * Mixing the drift's likelihood ratio over a half-normal prior of scale τ on
 * (0, ∞) gives, in closed form,
 *
 *     Λ = 2 / √(1 + τ²t) · exp(τ²S² / (2(1 + τ²t))) · Φ(τS / √(1 + τ²t)).
 *
 * Every mixed component is a martingale at the boundary and a supermartingale
 * inside the null (drift ≤ 0), so Λ is too: `P(sup Λ ≥ 1/α) ≤ α`. Variances are
 * estimated from the data (plug-in), which makes the guarantee approximate for
 * small samples; a minimum sample per arm and a variance floor keep it close (the
 * floor also keeps a deterministic simulated model, whose variance is 0, finite).
 */

/** Count, sum and sum of squares of per-task values: enough for a mean and a variance. */
export interface Moments {
  n: number;
  sum: number;
  sumSq: number;
}

export type Direction = "higher_is_worse" | "lower_is_worse";

export interface HarmTestSpec {
  direction: Direction;
  /** How much worse than stable the canary may be before it counts as harm, in the metric's units (≥ 0). */
  tolerance: number;
  /** Scale of the mixing distribution, in the metric's units: about the size of harm worth catching fast. */
  tau: number;
  /** Lower bound of each arm's variance. */
  varianceFloor: number;
  /** False-alarm bound of this test. */
  alpha: number;
  /** No verdict before each arm has this many values. */
  minSamples: number;
}

export interface ArmSummary {
  n: number;
  mean: number;
  /** Sample variance (n − 1), raised to the floor. */
  variance: number;
}

export interface HarmTestResult {
  canary: ArmSummary;
  stable: ArmSummary;
  /** `sign · (mean_canary − mean_stable)`: how much worse the canary is (negative: better). */
  harm: number;
  tolerance: number;
  /** Standard error of `harm`. */
  stdError: number;
  /** log Λ; −Infinity until both arms have `minSamples`. */
  logLambda: number;
  /** log(1/α): the bar `logLambda` must reach. */
  threshold: number;
  /** H0 (no harm beyond the tolerance) is rejected. */
  harmful: boolean;
}

/** Mean and floored sample variance of one arm. */
export function summarize(m: Moments, varianceFloor: number): ArmSummary {
  if (m.n <= 0) return { n: 0, mean: 0, variance: varianceFloor };
  const mean = m.sum / m.n;
  // Σ(x − x̄)² from the sums; rounding can take it a hair below zero.
  const ss = Math.max(0, m.sumSq - m.n * mean * mean);
  const variance = m.n > 1 ? ss / (m.n - 1) : 0;
  return { n: m.n, mean, variance: Math.max(variance, varianceFloor) };
}

/**
 * log Λ of the one-sided mixture for a standardised position: `x` = estimate −
 * tolerance, `v` its variance, `tau` the mixing scale.
 */
export function logMixtureRatio(x: number, v: number, tau: number): number {
  const t = 1 / v;
  const s = x * t;
  const k = 1 + tau * tau * t;
  return Math.LN2 - 0.5 * Math.log(k) + (tau * tau * s * s) / (2 * k) + logNormalCdf((tau * s) / Math.sqrt(k));
}

export function harmTest(canary: Moments, stable: Moments, spec: HarmTestSpec): HarmTestResult {
  const s = summarize(stable, spec.varianceFloor);
  const c = summarize(canary, Math.max(spec.varianceFloor, s.variance));
  const sign = spec.direction === "higher_is_worse" ? 1 : -1;
  const harm = sign * (c.mean - s.mean);
  const threshold = Math.log(1 / spec.alpha);
  const enough = c.n >= spec.minSamples && s.n >= spec.minSamples;
  const v = c.n > 0 && s.n > 0 ? c.variance / c.n + s.variance / s.n : Infinity;
  const logLambda = enough ? logMixtureRatio(harm - spec.tolerance, v, spec.tau) : -Infinity;
  return { canary: c, stable: s, harm, tolerance: spec.tolerance, stdError: Math.sqrt(v), logLambda, threshold, harmful: logLambda >= threshold };
}

/**
 * log Φ(z), accurate in both tails: erfc after Numerical Recipes' `erfcc`
 * (fractional error below 1.2e-7 everywhere), kept in log form so a far tail
 * neither underflows nor loses its digits.
 */
export function logNormalCdf(z: number): number {
  if (Number.isNaN(z)) return Number.NaN;
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const poly =
    -1.26551223 +
    t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  // log erfc(x) for x ≥ 0; Φ(z) = erfc(−z/√2)/2.
  const logErfc = Math.log(t) - x * x + poly;
  return z <= 0 ? logErfc - Math.LN2 : Math.log1p(-0.5 * Math.exp(logErfc));
}
