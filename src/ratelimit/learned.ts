/**
 * The limits the provider reports (`anthropic-ratelimit-*-limit` headers), per
 * model, shared by every gateway through the buckets' store (Redis in a cluster):
 * a gateway that just started uses what the others learned, rather than calling
 * unlimited. Every report renews them for `ttlMs`; each gateway re-reads them
 * every `refreshMs`, so a changed limit reaches all gateways within that time and
 * limits nobody has reported for `ttlMs` are forgotten (then learned again).
 *
 * Until a model's limits are known (none configured, none learned), its calls go
 * one at a time per gateway: the first answer's headers name the limits, or show
 * that the provider reports none (then the model is unlimited here).
 */
import { RateLimitedError } from "../errors";
import type { Buckets } from "./buckets";
import type { LimitSpec } from "./limits";

/** What is known of a model's provider limits: learned ones, "none" (the provider sent no limits), or unknown. */
export type Learned = LimitSpec | "none" | undefined;

export interface ReportedLimits {
  requestsLimit?: number | undefined;
  inputTokensLimit?: number | undefined;
  outputTokensLimit?: number | undefined;
}

export interface LearnedLimitsOptions {
  ttlMs: number;
  refreshMs: number;
  /** Longest a call waits behind a model's first call before a retryable `RateLimitedError`. */
  maxWaitMs: number;
  logger?: { warn(obj: Record<string, unknown>, msg: string): void } | undefined;
  now?: () => number;
}

interface Entry {
  value: Learned;
  readAt: number;
  reading?: Promise<void> | undefined;
  written?: string;
  wroteAt: number;
  /** Settles when the call that is finding the limits out settles. */
  probe?: Promise<void> | undefined;
}

const positive = (n: number | undefined) => (n !== undefined && Number.isFinite(n) && n >= 1 ? Math.floor(n) : undefined);

export class LearnedLimits {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(
    private readonly store: Pick<Buckets, "learnedLimits" | "learnLimits">,
    private readonly opts: LearnedLimitsOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** The model's limits as the cluster knows them, re-read from the store when older than `refreshMs`. */
  async current(model: string): Promise<Learned> {
    const e = this.entryOf(model);
    if (this.now() - e.readAt >= this.opts.refreshMs) await (e.reading ??= this.read(model, e));
    return e.value;
  }

  /** What this gateway knows now, without asking the store. */
  known(model: string): Learned {
    return this.entries.get(model)?.value;
  }

  /**
   * Waits until the model's limits are known or this caller is the one to find
   * them out; the returned function ends that turn (call it once the answer's
   * headers were reported).
   */
  async turn(model: string): Promise<() => void> {
    const e = this.entryOf(model);
    const deadline = this.now() + this.opts.maxWaitMs;
    while (e.value === undefined) {
      if (!e.probe) {
        let done!: () => void;
        e.probe = new Promise<void>((resolve) => (done = resolve));
        return () => {
          e.probe = undefined;
          done();
        };
      }
      const left = deadline - this.now();
      if (left <= 0 || !(await within(e.probe, left))) {
        throw new RateLimitedError(`the rate limits of ${model} are being learned; retry shortly`, {
          retryAfter: Math.max(0.001, this.opts.maxWaitMs / 1000),
          scope: model,
          source: "gateway",
        });
      }
    }
    return () => undefined;
  }

  /** An answer's headers: limits named are learned (and shared); none named while unknown means unlimited. */
  async report(model: string, h: ReportedLimits): Promise<void> {
    const e = this.entryOf(model);
    const reported: LimitSpec = {};
    const rpm = positive(h.requestsLimit);
    const itpm = positive(h.inputTokensLimit);
    const otpm = positive(h.outputTokensLimit);
    if (rpm !== undefined) reported.rpm = rpm;
    if (itpm !== undefined) reported.itpm = itpm;
    if (otpm !== undefined) reported.otpm = otpm;
    if (rpm === undefined && itpm === undefined && otpm === undefined) {
      if (e.value === undefined) e.value = "none";
      return;
    }
    e.value = reported;
    const text = JSON.stringify(reported);
    const now = this.now();
    // Renewed well before it expires, rewritten at once when it changed.
    if (text === e.written && now - e.wroteAt < this.opts.ttlMs / 4) return;
    e.written = text;
    e.wroteAt = now;
    try {
      await this.store.learnLimits(model, reported, this.opts.ttlMs);
    } catch (err) {
      e.written = undefined;
      this.opts.logger?.warn({ event: "ratelimit.learn_failed", model, err: String(err) }, "could not share the provider's rate limits");
    }
  }

  private entryOf(model: string): Entry {
    let e = this.entries.get(model);
    if (!e) this.entries.set(model, (e = { value: undefined, readAt: -Infinity, wroteAt: -Infinity }));
    return e;
  }

  private async read(model: string, e: Entry): Promise<void> {
    try {
      const stored = await this.store.learnedLimits(model);
      // The store is the cluster's truth; "none" is this gateway's own finding and outlives an empty store.
      // What this gateway itself wrote within the TTL stays, whatever a read racing the write saw.
      if (stored !== undefined) e.value = stored;
      else if (e.value !== "none" && this.now() - e.wroteAt >= this.opts.ttlMs) e.value = undefined;
    } catch (err) {
      this.opts.logger?.warn({ event: "ratelimit.learned_read_failed", model, err: String(err) }, "could not read the shared rate limits");
    } finally {
      e.readAt = this.now();
      e.reading = undefined;
    }
  }
}

/** Whether `p` settles within `ms`. */
async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
