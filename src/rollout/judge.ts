/**
 * The canary judge's verdict on one running canary, from the per-version
 * figures since it started: roll back when any metric shows harm beyond its
 * tolerance, else move up a step once the canary has finished enough tasks at
 * the current one, else wait. A pure function of the rollout row and the
 * figures; judgeLoop.ts reads them, applies the verdict and says so.
 *
 * Each metric gets a one-sided mSPRT (sequentialTest.ts) on canary − stable,
 * valid however often it is looked at; the false-alarm bound α is split evenly
 * across the metrics (Bonferroni), so the chance that a canary no worse than its
 * tolerances is ever rolled back is at most α in all.
 */
import type { CanaryMetricName, CanaryStats, JudgeEvidence, MetricEvidence, Rollout, VersionStats } from "../contracts";
import { CANARY_METRIC_NAMES } from "../contracts";
import { harmTest, type Direction, type Moments } from "./sequentialTest";

export interface JudgeSettings {
  /** False-alarm bound over every metric and every look. @default 0.05 */
  alpha: number;
  /** No metric is tested before both versions have this many finished tasks. @default 5 */
  minSamples: number;
}

export const DEFAULT_JUDGE_SETTINGS: JudgeSettings = { alpha: 0.05, minSamples: 5 };

interface MetricSpec {
  direction: Direction;
  moments(v: VersionStats): Moments;
  /** Harm beyond this (metric units) counts; from the stable version's mean where it is relative. */
  tolerance(stableMean: number): number;
  /** Lower bound of a version's variance: what a deterministic model (variance 0) is taken to have. */
  varianceFloor(stableMean: number): number;
  /**
   * The mixing scale τ: harm of about this much beyond the tolerance is what the test is quickest at.
   * @default the tolerance
   */
  tau?: number;
}

/** The metrics, their tolerances and their tests' scales. */
export const CANARY_METRICS: Readonly<Record<CanaryMetricName, MetricSpec>> = {
  // Lower by more than 5 points.
  completion_rate: {
    direction: "lower_is_worse",
    moments: (v) => ({ n: v.finished, sum: v.succeeded, sumSq: v.succeeded }),
    tolerance: () => 0.05,
    // A Bernoulli variance of p = 0.99.
    varianceFloor: () => 0.01,
    // A 5-point tolerance is finer than the harm worth a fast rollback (a prompt that breaks a share of tasks).
    tau: 0.2,
  },
  // Higher by more than 0.5 calls and more than 20 %.
  tool_calls_per_task: {
    direction: "higher_is_worse",
    moments: (v) => ({ n: v.finished, sum: v.tool_calls.sum, sumSq: v.tool_calls.sum_sq }),
    tolerance: (m) => Math.max(0.5, 0.2 * m),
    // A count's resolution: half a call.
    varianceFloor: () => 0.25,
  },
  duplicate_tool_calls_per_task: {
    direction: "higher_is_worse",
    moments: (v) => ({ n: v.finished, sum: v.duplicate_tool_calls.sum, sumSq: v.duplicate_tool_calls.sum_sq }),
    tolerance: (m) => Math.max(0.5, 0.2 * m),
    varianceFloor: () => 0.25,
  },
  // Higher by more than 20 %.
  cost_per_task: {
    direction: "higher_is_worse",
    moments: (v) => ({ n: v.finished, sum: v.cost_usd.sum, sumSq: v.cost_usd.sum_sq }),
    tolerance: (m) => 0.2 * m,
    // 5 % of the stable mean, and a micro-dollar for a model that costs nothing.
    varianceFloor: (m) => Math.max((0.05 * m) ** 2, 1e-12),
  },
};

export type Verdict =
  | { action: "rollback"; harmful: CanaryMetricName[]; evidence: JudgeEvidence }
  /** To `stepIndex` at `weight` %, or (`final`) the canary becomes the stable version. */
  | { action: "promote"; stepIndex: number; weight: number; final: boolean; evidence: JudgeEvidence }
  | { action: "hold"; evidence: JudgeEvidence };

const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);

function testMetric(name: CanaryMetricName, stats: CanaryStats, settings: JudgeSettings): MetricEvidence {
  const spec = CANARY_METRICS[name];
  const alpha = settings.alpha / CANARY_METRIC_NAMES.length;
  const stable = spec.moments(stats.stable);
  const stableMean = stable.n > 0 ? stable.sum / stable.n : 0;
  const tolerance = spec.tolerance(stableMean);
  const r = harmTest(spec.moments(stats.canary), stable, {
    direction: spec.direction,
    tolerance,
    // A relative tolerance of a metric whose stable mean is 0 is 0: the scale still has to be positive.
    tau: spec.tau ?? Math.max(tolerance, Math.sqrt(spec.varianceFloor(stableMean))),
    varianceFloor: spec.varianceFloor(stableMean),
    alpha,
    minSamples: settings.minSamples,
  });
  return {
    direction: spec.direction,
    stable: { n: r.stable.n, mean: r.stable.mean, sd: Math.sqrt(r.stable.variance) },
    canary: { n: r.canary.n, mean: r.canary.mean, sd: Math.sqrt(r.canary.variance) },
    difference: r.canary.mean - r.stable.mean,
    tolerance,
    std_error: finite(r.stdError) ?? 0,
    log_lambda: finite(r.logLambda),
    threshold: r.threshold,
    alpha,
    harmful: r.harmful,
  };
}

/** The verdict on a running canary (`rollout.canary_state` is `running`) given its figures; `now` stamps the evidence. */
export function judgeCanary(rollout: Rollout, stats: CanaryStats, now: Date, settings: JudgeSettings = DEFAULT_JUDGE_SETTINGS): Verdict {
  const metrics = Object.fromEntries(CANARY_METRIC_NAMES.map((m) => [m, testMetric(m, stats, settings)])) as Record<CanaryMetricName, MetricEvidence>;
  const harmful = CANARY_METRIC_NAMES.filter((m) => metrics[m].harmful);
  const evidence: JudgeEvidence = {
    at: now.toISOString(),
    test: "msprt",
    alpha: settings.alpha,
    step: rollout.step_index + 1,
    weight: rollout.canary_weight,
    stable_version: stats.stable.version,
    canary_version: stats.canary.version,
    stable_tasks: stats.stable.finished,
    canary_tasks: stats.canary.finished,
    canary_tasks_this_step: stats.canary.finished_since_step,
    metrics,
    harmful,
  };
  if (harmful.length > 0) return { action: "rollback", harmful, evidence };
  if (stats.canary.finished_since_step < rollout.min_tasks_per_step) return { action: "hold", evidence };
  const next = rollout.step_index + 1;
  const weight = rollout.steps[next];
  if (weight === undefined) return { action: "promote", stepIndex: rollout.step_index, weight: 0, final: true, evidence };
  return { action: "promote", stepIndex: next, weight, final: false, evidence };
}
