/**
 * The planner's memory cap (CLAWFLEET_PLANNER_MAX_RSS_MB). Slots are sized for
 * I/O-bound work (thousands of tasks, each mostly waiting on its model call),
 * so what bounds a planner is memory, not its slot count: while the process's
 * resident set is above the cap, a wake-up waits here before it claims a task;
 * once the tasks in flight settle and memory falls below the cap again, the
 * waiting wake-ups go on. Tasks already running are never stopped for it.
 * Pausing and resuming are each one log line (`planner.memory_paused`,
 * `planner.memory_resumed`).
 */
import type { Logger } from "../logging";

/** How often a paused gate looks at memory again. */
const RECHECK_MS = 250;

export interface AdmissionOptions {
  /** Resident set size above which no new wake-up is taken, in bytes; 0 turns the cap off. */
  maxRssBytes: number;
  logger: Pick<Logger, "info" | "warn">;
  /** Tasks in flight, for the log lines. */
  inFlight: () => number;
  /** @default process.memoryUsage.rss */
  rss?: () => number;
  /** @default RECHECK_MS */
  recheckMs?: number;
}

export class MemoryAdmission {
  private readonly rss: () => number;
  /** While over the cap: resolves once memory is below it (or the gate is closed). */
  private below: Promise<void> | undefined;
  private reopen: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: AdmissionOptions) {
    this.rss = opts.rss ?? (() => process.memoryUsage.rss());
  }

  /** Whether new wake-ups are held back now. */
  get paused(): boolean {
    return this.below !== undefined;
  }

  /** Resolves at once below the cap; above it, once memory is back below it or `close()` is called. */
  admit(): Promise<void> {
    if (this.opts.maxRssBytes === 0 || this.closed) return Promise.resolve();
    if (this.below) return this.below;
    const rss = this.rss();
    if (rss <= this.opts.maxRssBytes) return Promise.resolve();
    this.opts.logger.warn(
      { event: "planner.memory_paused", rss_mb: mb(rss), max_rss_mb: mb(this.opts.maxRssBytes), in_flight: this.opts.inFlight() },
      "planner over its memory cap: taking no new tasks until it is below",
    );
    this.below = new Promise<void>((resolve) => (this.reopen = resolve));
    this.timer = setInterval(() => {
      const now = this.rss();
      if (now > this.opts.maxRssBytes) return;
      this.opts.logger.info({ event: "planner.memory_resumed", rss_mb: mb(now), in_flight: this.opts.inFlight() }, "planner below its memory cap: taking tasks again");
      this.open();
    }, this.opts.recheckMs ?? RECHECK_MS).unref();
    return this.below;
  }

  /** Lets every waiting wake-up go, now and from now on (a shutdown: the worker then takes nothing). */
  close(): void {
    this.closed = true;
    if (this.below) this.open();
  }

  private open(): void {
    clearInterval(this.timer);
    this.reopen?.();
    this.below = undefined;
    this.reopen = undefined;
  }
}

function mb(bytes: number): number {
  return Math.round(bytes / 1_048_576);
}

/**
 * At most `limit` of the wrapped calls at once; the rest wait their turn, in order. A planner with
 * thousands of slots meets a full queue with thousands of wake-ups at once: their claims go to the
 * store a few at a time, not all together into its connection pool, where the ones that waited past
 * the pool's connect timeout would fail and open the circuit breaker on the claim action.
 */
export class CallLimit {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(call: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await call();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
