/** What the benchmark reports, computed the same way for every contender from the sim's request log. */
import type { ContenderRun } from "./clawfleet";
import type { SimLogEntry } from "./procs";

/** Most of `times` in any window [t, t + len). */
export function peakInWindow(times: readonly number[], len: number): number {
  const s = [...times].sort((a, b) => a - b);
  let best = 0;
  let j = 0;
  for (let i = 0; i < s.length; i++) {
    while ((s[j] as number) <= (s[i] as number) - len) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

export interface Row {
  contender: string;
  tasks: number;
  completed: number;
  calls: number;
  utilisation: number;
  peakWindow: number;
  peakShort: number;
  provider429: number;
  p50: number;
  p99: number;
  wallMs: number;
}

/**
 * Utilisation is measured while every slot had a task (from the first call
 * until fewer unfinished tasks remained than `concurrency`): in the tail no
 * limiter can fill the limit, whoever runs it.
 */
export function summarize(contender: string, log: readonly SimLogEntry[], run: ContenderRun, rpm: number, windowMs: number, concurrency: number): Row {
  const admitted = log.filter((e) => e.admitted !== false).map((e) => e.at);
  const refused = log.filter((e) => e.admitted === false).map((e) => e.at);
  const first = Math.min(...admitted);
  const doneTimes = run.tasks.map((t) => t.doneAt).sort((a, b) => a - b);
  const backlogEnd = doneTimes[Math.max(0, doneTimes.length - concurrency)] ?? Math.max(...admitted);
  const inBacklog = admitted.filter((t) => t <= backlogEnd);
  const span = Math.max(1, Math.max(...inBacklog) - first);
  // Latency of the tasks that completed (a failed task's time says little).
  const okLatency = run.tasks.filter((t) => t.ok).map((t) => t.latencyMs);
  return {
    contender,
    tasks: run.tasks.length,
    completed: run.tasks.filter((t) => t.ok).length,
    calls: admitted.length,
    utilisation: (inBacklog.length - 1) / ((rpm * span) / windowMs),
    peakWindow: peakInWindow(admitted, windowMs) / rpm,
    peakShort: peakInWindow(admitted, windowMs / 60) / (rpm / 60),
    provider429: refused.length,
    p50: percentile(okLatency, 50),
    p99: percentile(okLatency, 99),
    wallMs: run.wallMs,
  };
}
