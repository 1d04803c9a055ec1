/**
 * Event-loop blocking, for `/health/live`. A wedged loop cannot answer a probe at
 * all (the probe times out, which also fails it); this catches the loop that
 * still answers between long blocks (a synchronous spin, a runaway JSON.parse,
 * GC thrash), which a plain "process up" check would call healthy.
 *
 * `perf_hooks.monitorEventLoopDelay` records how late its timer fires; a block of
 * N ms shows up as a delay of about N ms. The histogram is read and reset every
 * `sampleMs`; liveness looks at the worst delay of the samples inside `windowMs`
 * plus the one being collected. A reset drops the histogram's next tick (it only
 * re-arms), so a block that ends just before a sample could go unrecorded: the
 * sampling timer's own lateness, which the same block causes, covers that gap.
 * The window is one Kubernetes probe period, so a
 * single long block fails about one probe (kubelet's failureThreshold decides
 * whether that restarts the pod) while a loop that keeps blocking fails them all.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

export interface LoopMonitorOptions {
  /** Liveness fails when a single block was longer than this. */
  maxBlockMs: number;
  /** How long a block is remembered. @default 10000 (one probe period) */
  windowMs?: number;
  /**
   * How often the histogram is read and reset. The lateness backstop under-reads a block by at
   * most this much, hence a tenth of the limit. @default min(1000, max(50, maxBlockMs / 10))
   */
  sampleMs?: number;
}

export interface LoopState {
  ok: boolean;
  /** Longest delay seen within the window, in ms. */
  maxDelayMs: number;
  thresholdMs: number;
  windowMs: number;
}

export class LoopMonitor {
  private readonly histogram: IntervalHistogram;
  private readonly samples: Array<{ at: number; maxMs: number }> = [];
  private readonly timer: NodeJS.Timeout;
  private readonly sampleMs: number;
  private lastSampleAt = Date.now();
  readonly windowMs: number;

  constructor(private readonly opts: LoopMonitorOptions) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.sampleMs = opts.sampleMs ?? Math.min(1000, Math.max(50, Math.floor(opts.maxBlockMs / 10)));
    // 20 ms resolution: fine enough for thresholds in seconds, cheap (one timer).
    this.histogram = monitorEventLoopDelay({ resolution: 20 });
    this.histogram.enable();
    this.timer = setInterval(() => this.sample(), this.sampleMs);
    this.timer.unref();
  }

  private sample(now = Date.now()): void {
    this.samples.push({ at: now, maxMs: Math.max(this.currentMaxMs(), this.lateness(now)) });
    this.lastSampleAt = now;
    this.histogram.reset();
    while (this.samples.length > 0 && (this.samples[0]?.at ?? now) < now - this.windowMs) this.samples.shift();
  }

  /** How late the sampling timer is (or was, when it fired): a block delays it as much as any timer. */
  private lateness(now: number): number {
    return Math.max(0, now - this.lastSampleAt - this.sampleMs);
  }

  private currentMaxMs(): number {
    // The histogram reports nanoseconds; an empty one reports a huge max, hence the count check.
    return this.histogram.count > 0 ? this.histogram.max / 1e6 : 0;
  }

  state(now = Date.now()): LoopState {
    let max = Math.max(this.currentMaxMs(), this.lateness(now));
    for (const s of this.samples) if (s.at >= now - this.windowMs && s.maxMs > max) max = s.maxMs;
    return { ok: max <= this.opts.maxBlockMs, maxDelayMs: Math.round(max), thresholdMs: this.opts.maxBlockMs, windowMs: this.windowMs };
  }

  /** Forgets every delay seen so far (start-up work is not a wedged loop). */
  reset(): void {
    this.samples.length = 0;
    this.histogram.reset();
    this.lastSampleAt = Date.now();
  }

  close(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}
