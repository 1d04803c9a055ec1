/**
 * The arithmetic of `clawfleet plan --verify`: the load scaled down for a short
 * run against the simulated model, the prediction for that scaled load, and the
 * prediction set against what the run measured. Pure: the run itself (processes,
 * submissions, clocks) is the command's (app/client/plan.ts).
 *
 * Scaling. The rate of tasks and every limit are multiplied by `scale`, so each
 * limit's utilisation is the one planned. A limit is a token bucket holding one
 * window's worth, which lets that much through at once: with the provider's
 * one-minute window a short run would be mostly burst. The run's window is
 * shortened (to a tenth of the run, but long enough for the tightest limit to
 * admit 10 model calls in it) and each limit set per window, rounded; the prediction uses
 * the limits as rounded, and the burst the first window lets through.
 */
import { LIMIT_KINDS, planCapacity, unitsPerTask, type CapacityPlan, type LimitKind, type PlanInput } from "./plan";

export interface VerifySetup {
  /** The scaled load and limits (per minute, as rounded to whole units per window). */
  input: PlanInput;
  plan: CapacityPlan;
  windowMs: number;
  /** Each limit per window, as the simulated model and the gateway are given it. */
  perWindow: Partial<Record<LimitKind, number>>;
}

/** The fewest model calls a window of the tightest limit should hold, so rounding moves a limit by 5% at most. */
const MIN_CALLS_PER_WINDOW = 10;

export function verifySetup(input: PlanInput, scale: number, seconds: number): VerifySetup {
  const scaled = LIMIT_KINDS.flatMap((k) => {
    const perMinute = input.limits[k];
    return perMinute === undefined ? [] : [[k, perMinute * scale] as const];
  });
  // Model calls a minute the tightest limit admits: a window must hold MIN_CALLS_PER_WINDOW of them.
  const fewestCalls = Math.min(...scaled.map(([k, perMinute]) => perMinute / (unitsPerTask(input, k) / input.callsPerTask)));
  const windowMs = Math.round(Math.min(60_000, Math.max((seconds * 1000) / 10, (60_000 * MIN_CALLS_PER_WINDOW) / fewestCalls)));
  const perWindow: Partial<Record<LimitKind, number>> = {};
  const limits: Partial<Record<LimitKind, number>> = {};
  for (const [k, perMinute] of scaled) {
    const n = Math.max(1, Math.round((perMinute * windowMs) / 60_000));
    perWindow[k] = n;
    limits[k] = (n * 60_000) / windowMs;
  }
  const scaledInput: PlanInput = { ...input, tasksPerHour: input.tasksPerHour * scale, limits };
  return { input: scaledInput, plan: planCapacity(scaledInput), windowMs, perWindow };
}

/** What a verification run saw. Times in seconds. */
export interface VerifyMeasurement {
  /** How long tasks were submitted for. */
  seconds: number;
  /** From the first submission to the last look at the tasks (submission plus the wait for them to end). */
  elapsedSeconds: number;
  submitted: number;
  succeeded: number;
  failed: number;
  /** Failed or cancelled tasks by their error's type. */
  failures: Record<string, number>;
  /** Tasks that had not started when the run ended. */
  notStarted: number;
  /** Model calls the simulated model answered while tasks were being submitted. */
  callsWhileSubmitting: number;
  /** 429 answers of the simulated model, the whole run. */
  rateLimited: number;
  /** Submission to start, mean over the tasks that started. */
  queueDelayMean: number;
  queueDelayP95: number;
  /** Start to end, mean over the tasks that succeeded. */
  taskRunMean: number;
  /** Tokens the simulated model billed per answered call. */
  inputTokensPerCall: number;
  outputTokensPerCall: number;
}

export interface VerifyRow {
  figure: string;
  predicted: number | null;
  measured: number;
  /** (measured − predicted) / predicted; null when the prediction is 0 or unbounded. */
  relativeError: number | null;
}

export interface VerifyComparison {
  rows: VerifyRow[];
  predictedSaturated: boolean;
  /** Tasks left unstarted or unfinished when the run ended, or 429s from the simulated model. */
  measuredSaturated: boolean;
}

/**
 * Model calls per minute over the first `seconds` of the run: the offered rate, less the ramp-up (a task
 * submitted at t makes its calls over its run, so the calls of the last half run fall past the end), and no
 * more than the binding limit's rate plus the first window's burst.
 */
function admittedPerMinute(setup: VerifySetup, seconds: number): number {
  const { plan } = setup;
  const run = plan.load.tasksPerSecond === 0 ? 0 : plan.fleet.concurrentTasks / plan.load.tasksPerSecond;
  const offered = plan.load.callsPerMinute * Math.max(0, 1 - run / (2 * seconds));
  const binding = plan.limits.find((l) => l.limit === plan.binding);
  if (!binding) return offered;
  const callsPerUnit = plan.load.callsPerMinute / binding.demandPerMinute;
  const burst = (setup.perWindow[binding.limit] ?? 0) * callsPerUnit;
  return Math.min(offered, binding.perMinute * callsPerUnit + (burst * 60) / seconds);
}

const relative = (predicted: number | null, measured: number): number | null =>
  predicted === null || predicted === 0 ? null : (measured - predicted) / predicted;

export function compareVerify(setup: VerifySetup, m: VerifyMeasurement): VerifyComparison {
  const { plan, input } = setup;
  const callsPerMinute = admittedPerMinute(setup, m.seconds);
  const canFinish = Math.floor((admittedPerMinute(setup, m.elapsedSeconds) * m.elapsedSeconds) / 60 / input.callsPerTask);
  const predictedFinished = plan.fits ? m.submitted : Math.min(m.submitted, canFinish);
  const row = (figure: string, predicted: number | null, measured: number): VerifyRow => ({ figure, predicted, measured, relativeError: relative(predicted, measured) });
  const rows = [
    row("model calls/min while submitting", callsPerMinute, (m.callsWhileSubmitting * 60) / m.seconds),
    row("tasks succeeded", predictedFinished, m.succeeded),
    row("queueing delay, submit → started, mean (s)", plan.queueing.plannerWait, m.queueDelayMean),
    row("task run, started → ended, mean (s)", plan.queueing.taskRunSeconds, m.taskRunMean),
    // The gateway holds calls to the limits it is given, saturated or not: none should meet a 429.
    row("429 answers", 0, m.rateLimited),
    row("input tokens per call", input.inputTokensPerCall, m.inputTokensPerCall),
    row("output tokens per call", input.outputTokensPerCall, m.outputTokensPerCall),
  ];
  const measuredSaturated = m.notStarted > 0 || m.succeeded + m.failed < m.submitted || m.rateLimited > 0;
  return { rows, predictedSaturated: !plan.fits, measuredSaturated };
}
