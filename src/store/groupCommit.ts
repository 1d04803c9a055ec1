/**
 * Group commit: writes that arrive while another is on its way to the database
 * are sent together, as one call (one statement, one commit), instead of one
 * call and one commit each. The new tasks of an intake (src/queue/createBatcher.ts)
 * and the checkpoints of a store (src/store/checkpointBatch.ts) go through it.
 *
 * It adds no wait at low load: with nothing on the wire, an item goes at once,
 * alone, through `one`. Only what arrives meanwhile waits: for a batch to come
 * back, or `maxWaitMs` (or until `maxBatch` wait), whichever is first; then it goes
 * even though an earlier batch has not come back, unless `maxInFlight` batches are
 * on the wire already, in which case it waits for one of them.
 *
 * A batch is also capped by its items' size (`maxBatchBytes`, as the sink measures
 * them); an item bigger than the cap goes alone.
 *
 * An item whose key (`keyOf`: a checkpoint's task) is on the wire already waits for
 * that item to be answered, past `maxWaitMs`: sent meanwhile, it would find the row
 * that write holds, and wait on it there, holding a connection, or (a batch that
 * skips locked rows) go round again alone, a commit of its own. The items that wait
 * for it then go together, as one batch. A key is on the wire until its own item is
 * answered, not until the rest of its batch is (a lone write of another key may wait
 * on a lock).
 *
 * Each caller gets its own item's answer, and only after its own commit: what a
 * lone `one` would have answered or thrown. A batch that fails as a whole is sent
 * again item by item, each through `one`, so each item gets exactly what a lone
 * write would get; so is an item the batch answers `alone` (the sink could not
 * write it in the batch). The batch's other items are answered first; the lone
 * writes keep the batch's place on the wire until they are answered.
 */
import { InternalError } from "../errors";

export interface GroupCommitOptions {
  /** Items of one batch at most. @default 64 */
  maxBatch?: number;
  /** The longest an item waits for a batch on the wire to come back before it goes anyway. @default 2 */
  maxWaitMs?: number;
  /** Batches on the wire at once at most; more wait for one to come back. @default 4 */
  maxInFlight?: number;
  /** The items of one batch at most, in the sink's measure (`sizeOf`); a bigger item goes alone. @default 256 KiB */
  maxBatchBytes?: number;
}

/** Told of a batch that failed as a whole, with its number of items; it only reports (what it throws is ignored). */
export type BatchFailedHook = (err: unknown, items: number) => void;

/** A batch's cap in the sink's measure when none is given: 256 KiB of JSON for the intake's new tasks. */
export const DEFAULT_MAX_BATCH_BYTES = 256 * 1024;

/** Batches on the wire at once when `maxInFlight` is not given. */
export const DEFAULT_MAX_IN_FLIGHT = 4;

/** One item's answer in a batch's: its result, what its lone write would have thrown, or "send it alone". */
export type ItemOutcome<R> = { ok: true; result: R } | { ok: false; error: unknown } | { alone: true };

/** Where the items go. */
export interface GroupCommitSink<I, R> {
  /** The batch's operation, named by the error of an item a batch left unanswered. */
  operation: string;
  /** A lone item's write. */
  one(item: I): Promise<R>;
  /** A batch's write, answered item by item in order; a throw fails the batch as a whole (each item then goes alone). */
  many(items: readonly I[]): Promise<ReadonlyArray<ItemOutcome<R>>>;
  /** An item's size, counted against `maxBatchBytes`. @default 1 */
  sizeOf?(item: I): number;
  /** What an item writes to (a row): one whose key is on the wire waits for that write to come back. @default none */
  keyOf?(item: I): string;
  /** Told of a batch that failed as a whole (its items then go alone). */
  onBatchFailed?: BatchFailedHook;
}

interface Waiting<I, R> {
  item: I;
  bytes: number;
  /** `keyOf(item)`, when the sink has keys. */
  key?: string;
  resolve: (r: R) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<I, R> {
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  private readonly maxInFlight: number;
  private readonly maxBatchBytes: number;
  private waiting: Waiting<I, R>[] = [];
  private waitingBytes = 0;
  private inFlight = 0;
  /** Batches on the wire, each holding one of `maxInFlight`. */
  private readonly sending = new Set<Promise<void>>();
  /** The keys of the items on the wire, with how many of each. */
  private readonly onWire = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: GroupCommitSink<I, R>,
    opts: GroupCommitOptions = {},
    /** The largest batch the sink takes: `maxBatch` is held under it. */
    sinkMax = Number.POSITIVE_INFINITY,
  ) {
    this.maxBatch = Math.min(Math.max(1, opts.maxBatch ?? 64), sinkMax);
    this.maxWaitMs = opts.maxWaitMs ?? 2;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.maxBatchBytes = Math.max(1, opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES);
  }

  /** The item's write, answered after its own commit, batched with the others that wait with it. */
  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      // Nothing on the wire (so nothing waits either: a flush sends at least one batch): it goes alone at
      // once, and its size does not matter (one bigger than the cap goes alone anyway), so it is not measured.
      const key = this.sink.keyOf?.(item);
      if (this.inFlight === 0) {
        this.dispatch([{ item, bytes: 0, key, resolve, reject }]);
        return;
      }
      const bytes = this.sink.sizeOf ? this.sink.sizeOf(item) : 1;
      this.waiting.push({ item, bytes, key, resolve, reject });
      this.waitingBytes += bytes;
      // A full batch goes at once; what is left of it waits, as any item does.
      if (this.full()) this.flush(true);
      if (this.waiting.length > 0) this.timer ??= setTimeout(() => this.onTimer(), this.maxWaitMs);
    });
  }

  private onTimer(): void {
    this.timer = undefined;
    this.flush();
  }

  /** What waits makes a full batch: `maxBatch` items, or `maxBatchBytes`. */
  private full(): boolean {
    return this.waiting.length >= this.maxBatch || this.waitingBytes >= this.maxBatchBytes;
  }

  /**
   * Sends what waits (`onlyFull`: only full batches), a batch at a time, while fewer than `maxInFlight` are on the
   * wire. What waits for its key's write stays, in its place, for that write's return to send it.
   */
  private flush(onlyFull = false): void {
    while (this.waiting.length > 0 && this.inFlight < this.maxInFlight && (!onlyFull || this.full())) {
      const batch = this.nextBatch(onlyFull);
      if (batch.length === 0) break;
      this.dispatch(batch);
    }
    if (this.waiting.length === 0 && this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** Puts a batch on the wire, holding one of `maxInFlight` until it is answered. */
  private dispatch(batch: Waiting<I, R>[]): void {
    this.inFlight++;
    for (const w of batch) if (w.key !== undefined) this.keyOnWire(w, w.key);
    const sent: Promise<void> = this.send(batch).finally(() => {
      this.inFlight--;
      this.sending.delete(sent);
      // What came meanwhile has waited for this batch already: it goes now.
      if (this.waiting.length > 0) this.flush();
    });
    this.sending.add(sent);
  }

  /** Counts an item's key on the wire until the item is answered; then what waits for the key may go. */
  private keyOnWire(w: Waiting<I, R>, key: string): void {
    this.onWire.set(key, (this.onWire.get(key) ?? 0) + 1);
    const { resolve, reject } = w;
    let answered = false;
    const release = () => {
      if (answered) return;
      answered = true;
      const n = (this.onWire.get(key) ?? 1) - 1;
      if (n > 0) this.onWire.set(key, n);
      else this.onWire.delete(key);
      if (this.waiting.length > 0) this.flush();
    };
    w.resolve = (r) => {
      release();
      resolve(r);
    };
    w.reject = (err) => {
      release();
      reject(err);
    };
  }

  /** Resolves once every item submitted so far is answered: what waits is sent, what is on the wire comes back. */
  async drain(): Promise<void> {
    while (this.waiting.length > 0 || this.sending.size > 0) {
      this.flush();
      await Promise.allSettled(this.sending);
    }
  }

  /**
   * Takes the next batch off what waits, in order, passing over the items whose key is on the wire: at most
   * `maxBatch` items, and `maxBatchBytes` unless the first alone is bigger. With `onlyFull`, nothing unless
   * that batch is full (held items do not fill it).
   */
  private nextBatch(onlyFull: boolean): Waiting<I, R>[] {
    const taken: number[] = [];
    let bytes = 0;
    let capped = false;
    for (let i = 0; i < this.waiting.length; i++) {
      const w = this.waiting[i] as Waiting<I, R>;
      if (w.key !== undefined && this.onWire.has(w.key)) continue;
      if (taken.length === this.maxBatch || (taken.length > 0 && bytes + w.bytes > this.maxBatchBytes)) {
        capped = true;
        break;
      }
      taken.push(i);
      bytes += w.bytes;
    }
    if (taken.length === 0 || (onlyFull && !capped && taken.length < this.maxBatch && bytes < this.maxBatchBytes)) return [];
    this.waitingBytes -= bytes;
    // Nothing held before the batch's last item (always so without keys): the batch is the front of the queue.
    if (taken[taken.length - 1] === taken.length - 1) return this.waiting.splice(0, taken.length);
    const inBatch = new Set(taken);
    const batch = taken.map((i) => this.waiting[i] as Waiting<I, R>);
    this.waiting = this.waiting.filter((_, i) => !inBatch.has(i));
    return batch;
  }

  /**
   * A batch's write. What it leaves to send alone goes in its place on the wire, after its other items are
   * answered: a lone write that waits (on a row another transaction holds) keeps that place. Never rejects.
   */
  private async send(batch: Waiting<I, R>[]): Promise<void> {
    const [only] = batch;
    if (batch.length === 1 && only) return this.sendAlone(only);
    let outcomes: ReadonlyArray<ItemOutcome<R>>;
    try {
      outcomes = await this.sink.many(batch.map((w) => w.item));
    } catch (err) {
      // Failed as a whole: each item goes alone, and gets what a lone write gets.
      this.tell(err, batch.length);
      await Promise.all(batch.map((w) => this.sendAlone(w)));
      return;
    }
    const alone: Waiting<I, R>[] = [];
    batch.forEach((w, i) => {
      const o = outcomes[i];
      if (o === undefined) w.reject(new InternalError("the batch answered fewer items than it was sent", { operation: this.sink.operation }));
      else if ("alone" in o) alone.push(w);
      else if (o.ok) w.resolve(o.result);
      else w.reject(o.error);
    });
    await Promise.all(alone.map((w) => this.sendAlone(w)));
  }

  /** One item's lone write, answered to its caller. Never rejects. */
  private async sendAlone(w: Waiting<I, R>): Promise<void> {
    try {
      w.resolve(await this.sink.one(w.item));
    } catch (err) {
      w.reject(err);
    }
  }

  private tell(err: unknown, items: number): void {
    try {
      this.sink.onBatchFailed?.(err, items);
    } catch {
      // The hook only reports: its own failure must not keep the batch's items from their lone writes.
    }
  }
}
