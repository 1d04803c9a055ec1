/**
 * Health of this process.
 *
 * - Readiness: each role registers a check when it has started, and
 *   `/health/ready` is 200 only when every expected role reports ready; 503 with
 *   each check's reason otherwise.
 * - Liveness: the process answers and, once it has started, its event loop has not
 *   been blocked longer than `maxLoopBlockMs` at once within the last window (see
 *   `eventLoop.ts`). Start-up work (module loading, PGlite's WebAssembly, migrations)
 *   can hold the loop for seconds on a small machine; it is judged by the startup
 *   probe's deadline, not as a wedged loop, so `markStarted()` clears what came before.
 */
import { LoopMonitor, type LoopState } from "./eventLoop";

export interface CheckResult {
  ok: boolean;
  reason?: string;
}

export interface HealthOptions {
  /** Liveness fails after a single event-loop block longer than this. @default 10000 */
  maxLoopBlockMs?: number;
  /** How long a block counts against liveness. @default 10000 */
  loopWindowMs?: number;
}

export interface LiveReport {
  status: "ok" | "failing";
  /** True until the node has started; blocks before that do not count. */
  starting: boolean;
  uptime_s: number;
  event_loop: { max_delay_ms: number; threshold_ms: number; window_ms: number };
  reason?: string;
}

export class Health {
  private readonly checks = new Map<string, () => CheckResult>();
  private readonly started = Date.now();
  private readonly loop: LoopMonitor;
  private startedUp = false;

  constructor(
    private readonly expected: readonly string[],
    opts: HealthOptions = {},
  ) {
    this.loop = new LoopMonitor({
      maxBlockMs: opts.maxLoopBlockMs ?? 10_000,
      ...(opts.loopWindowMs !== undefined ? { windowMs: opts.loopWindowMs } : {}),
    });
  }

  register(name: string, check: () => CheckResult = () => ({ ok: true })): void {
    this.checks.set(name, check);
  }

  unregister(name: string): void {
    this.checks.delete(name);
  }

  /** The node has started: from now on a blocked event loop fails liveness. */
  markStarted(): void {
    this.loop.reset();
    this.startedUp = true;
  }

  live(): LiveReport {
    const loop: LoopState = this.loop.state();
    const failing = this.startedUp && !loop.ok;
    const report: LiveReport = {
      status: failing ? "failing" : "ok",
      starting: !this.startedUp,
      uptime_s: Math.round((Date.now() - this.started) / 1000),
      event_loop: { max_delay_ms: loop.maxDelayMs, threshold_ms: loop.thresholdMs, window_ms: loop.windowMs },
    };
    if (failing) {
      report.reason = `event loop blocked for ${loop.maxDelayMs} ms within the last ${Math.round(loop.windowMs / 1000)} s (limit ${loop.thresholdMs} ms)`;
    }
    return report;
  }

  ready(): { ready: boolean; checks: Record<string, CheckResult> } {
    const checks: Record<string, CheckResult> = {};
    for (const name of this.expected) {
      const check = this.checks.get(name);
      if (!check) {
        checks[name] = { ok: false, reason: "not started" };
        continue;
      }
      try {
        checks[name] = check();
      } catch (err) {
        checks[name] = { ok: false, reason: (err as Error).message };
      }
    }
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }

  /** Stops the event-loop monitor. */
  close(): void {
    this.loop.close();
  }
}

/** An HTTP answer to a probe: the same from the API and from the probe server of a process without it. */
export interface ProbeAnswer {
  status: 200 | 503;
  body: unknown;
}

/** `GET /health/live`. */
export function liveAnswer(health: Health): ProbeAnswer {
  const live = health.live();
  return { status: live.status === "ok" ? 200 : 503, body: live };
}

/** `GET /health/ready`: 503 with each check's reason while anything is not ready. */
export function readyAnswer(health: Health): ProbeAnswer {
  const r = health.ready();
  return { status: r.ready ? 200 : 503, body: { status: r.ready ? "ready" : "not_ready", checks: r.checks } };
}
