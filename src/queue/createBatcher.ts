/**
 * Group commit of new tasks: the `createTask`s of one intake process that arrive
 * while another is on its way to the database are sent together, as one
 * `createTasks` call (one statement and one commit for the items without an
 * idempotency key), instead of one call and one commit each. The intake service
 * calls its own database; the store may as well be the checkpoint role over the
 * broker (`RemoteTaskStore`), which the caps and the fallback below also cover.
 *
 * It adds no wait at low load: with nothing on the wire, a task goes at once,
 * alone, through `createTask`. Only what arrives meanwhile waits, and never
 * longer than `maxWaitMs` (or until `maxBatch` wait): then it goes even though
 * an earlier batch has not come back, up to `maxInFlight` batches at a time.
 *
 * A batch is also capped by its serialized size (`maxBatchBytes`), well under the
 * transport's payload limit (NATS: 1 MB by default) that a batch of large submits
 * (up to 1 MiB each) would pass; an item bigger than the cap goes alone.
 *
 * Each caller gets its own item's answer, and only after its own commit: what a
 * lone `createTask` would have answered or thrown. A call that fails as a whole
 * (its params refused, the payload too large, a checkpoint service that predates
 * `createTasks`, a timeout) is sent again item by item, each through `createTask`,
 * so each item gets exactly what a lone submit would get.
 */
import { CREATE_TASKS_MAX, type CreateTaskItem, type CreateTaskOutcome, type CreateTaskResult, type NewTask } from "../contracts";
import { restoreError, InternalError } from "../errors";
import type { TaskStore } from "../store/types";

export interface CreateBatcherOptions {
  /** Items of one batch at most. @default 64 */
  maxBatch?: number;
  /** The longest an item waits for a batch on the wire to come back before it goes anyway. @default 2 */
  maxWaitMs?: number;
  /** Batches on the wire at once at most; more wait for one to come back. @default 4 */
  maxInFlight?: number;
  /** The serialized items (JSON, UTF-8 bytes) of one batch at most; a bigger item goes alone. @default 256 KiB */
  maxBatchBytes?: number;
}

/** A quarter of NATS's default max payload (1 MB): room for the envelope and the answer. */
const MAX_BATCH_BYTES = 256 * 1024;

/** The item's JSON size in bytes; one JSON cannot write counts as too big to share a batch, and its lone `createTask` answers it. */
function sizeOf(item: CreateTaskItem, maxBatchBytes: number): number {
  try {
    return Buffer.byteLength(JSON.stringify(item));
  } catch {
    return maxBatchBytes + 1;
  }
}

interface Waiting {
  item: CreateTaskItem;
  /** The item's serialized size. */
  bytes: number;
  resolve: (r: CreateTaskResult) => void;
  reject: (err: unknown) => void;
}

export class CreateBatcher {
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  private readonly maxInFlight: number;
  private readonly maxBatchBytes: number;
  private waiting: Waiting[] = [];
  private waitingBytes = 0;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Pick<TaskStore, "createTask" | "createTasks">,
    opts: CreateBatcherOptions = {},
  ) {
    this.maxBatch = Math.min(Math.max(1, opts.maxBatch ?? 64), CREATE_TASKS_MAX);
    this.maxWaitMs = opts.maxWaitMs ?? 2;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 4);
    this.maxBatchBytes = Math.max(1, opts.maxBatchBytes ?? MAX_BATCH_BYTES);
  }

  /** `createTask`, answered after this task's commit, batched with the others that wait with it. */
  create(task: NewTask, idempotencyKey?: string): Promise<CreateTaskResult> {
    return new Promise<CreateTaskResult>((resolve, reject) => {
      const item: CreateTaskItem = idempotencyKey === undefined ? { task } : { task, idempotencyKey };
      const bytes = sizeOf(item, this.maxBatchBytes);
      this.waiting.push({ item, bytes, resolve, reject });
      this.waitingBytes += bytes;
      if (this.inFlight === 0) this.flush();
      // A full batch goes at once; what is left of it waits, as any item does.
      else if (this.full()) this.flush(true);
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

  /** Sends what waits (`onlyFull`: only full batches), a batch at a time, while fewer than `maxInFlight` are on the wire. */
  private flush(onlyFull = false): void {
    while (this.waiting.length > 0 && this.inFlight < this.maxInFlight && (!onlyFull || this.full())) {
      const batch = this.waiting.splice(0, this.batchLength());
      for (const w of batch) this.waitingBytes -= w.bytes;
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        // What came meanwhile has waited for this batch already: it goes now.
        if (this.waiting.length > 0) this.flush();
      });
    }
    if (this.waiting.length === 0 && this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** How many of the first items waiting make the next batch: at most `maxBatch`, and `maxBatchBytes` unless the first alone is bigger. */
  private batchLength(): number {
    let n = 0;
    let bytes = 0;
    for (const w of this.waiting) {
      if (n === this.maxBatch || (n > 0 && bytes + w.bytes > this.maxBatchBytes)) break;
      n++;
      bytes += w.bytes;
    }
    return n;
  }

  private async send(batch: Waiting[]): Promise<void> {
    const [only] = batch;
    if (batch.length === 1 && only) {
      try {
        only.resolve(await this.store.createTask(only.item.task, only.item.idempotencyKey));
      } catch (err) {
        only.reject(err);
      }
      return;
    }
    let outcomes: CreateTaskOutcome[];
    try {
      outcomes = await this.store.createTasks(batch.map((w) => w.item));
    } catch {
      // Failed as a whole: its params refused (one item the checkpoint finds invalid), its payload too large, no
      // `createTasks` action (a checkpoint service older than this intake), a timeout, the store down. Each item
      // goes alone, and gets what a lone submit gets. Should the batch have committed all the same (its answer
      // lost), an item's lone retry is a retried lone create, answered as one is today: with an idempotency key,
      // the task the batch committed (created: false); without one, the error of a task id already stored.
      await Promise.all(batch.map((w) => this.send([w])));
      return;
    }
    batch.forEach((w, i) => {
      const o = outcomes[i];
      if (o === undefined) w.reject(new InternalError("the batch answered fewer items than it was sent", { operation: "createTasks" }));
      else if (o.ok) w.resolve(o.result);
      else w.reject(restoreError(o.error.type, o.error.message, o.error.data) ?? new InternalError(o.error.message, { operation: "createTask" }));
    });
  }
}
