/**
 * Group commit of new tasks: the `createTask`s of one intake process that arrive
 * while another is on its way to the database are sent together, as one
 * `createTasks` call (one statement and one commit for the items without an
 * idempotency key), instead of one call and one commit each. The intake service
 * calls its own database; the store may as well be the checkpoint role over the
 * broker (`RemoteTaskStore`), which the caps and the fallback also cover. When a
 * task waits, and how a failed batch is sent again item by item so that each
 * submit gets what a lone one would: src/store/groupCommit.ts.
 *
 * A batch is also capped by its serialized size (`maxBatchBytes`, 256 KiB: a
 * quarter of NATS's default max payload of 1 MB, room for the envelope and the
 * answer), which a batch of large submits (up to 1 MiB each) would otherwise
 * pass; an item bigger than the cap goes alone. A call that fails as a whole
 * (its params refused, the payload too large, a checkpoint service that predates
 * `createTasks`, a timeout) is sent again item by item, each through `createTask`.
 */
import { CREATE_TASKS_MAX, type CreateTaskItem, type CreateTaskResult, type NewTask } from "../contracts";
import { restoreError, InternalError } from "../errors";
import { DEFAULT_MAX_BATCH_BYTES, GroupCommit, type GroupCommitOptions, type ItemOutcome } from "../store/groupCommit";
import type { TaskStore } from "../store/types";

/** `maxBatchBytes` counts the serialized items (JSON, UTF-8 bytes). */
export type CreateBatcherOptions = GroupCommitOptions;

/** The item's JSON size in bytes; one JSON cannot write counts as too big to share a batch, and its lone `createTask` answers it. */
function sizeOf(item: CreateTaskItem, maxBatchBytes: number): number {
  try {
    return Buffer.byteLength(JSON.stringify(item));
  } catch {
    return maxBatchBytes + 1;
  }
}

/** The group commit (src/store/groupCommit.ts) of new tasks, through the store's `createTask` and `createTasks`. */
export class CreateBatcher {
  private readonly commits: GroupCommit<CreateTaskItem, CreateTaskResult>;

  constructor(store: Pick<TaskStore, "createTask" | "createTasks">, opts: CreateBatcherOptions = {}) {
    const maxBatchBytes = Math.max(1, opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES);
    this.commits = new GroupCommit<CreateTaskItem, CreateTaskResult>(
      {
        operation: "createTasks",
        one: (item) => store.createTask(item.task, item.idempotencyKey),
        // Failed as a whole (a throw): its params refused (one item the checkpoint finds invalid), its payload too
        // large, no `createTasks` action (a checkpoint service older than this intake), a timeout, the store down.
        // Each item then goes alone, and gets what a lone submit gets. Should the batch have committed all the
        // same (its answer lost), an item's lone retry is a retried lone create, answered as one is today: with
        // an idempotency key, the task the batch committed (created: false); without one, the error of a task
        // id already stored.
        many: async (items) =>
          (await store.createTasks([...items])).map(
            (o): ItemOutcome<CreateTaskResult> =>
              o.ok ? { ok: true, result: o.result } : { ok: false, error: restoreError(o.error.type, o.error.message, o.error.data) ?? new InternalError(o.error.message, { operation: "createTask" }) },
          ),
        sizeOf: (item) => sizeOf(item, maxBatchBytes),
      },
      { ...opts, maxBatchBytes },
      CREATE_TASKS_MAX,
    );
  }

  /** `createTask`, answered after this task's commit, batched with the others that wait with it. */
  create(task: NewTask, idempotencyKey?: string): Promise<CreateTaskResult> {
    return this.commits.submit(idempotencyKey === undefined ? { task } : { task, idempotencyKey });
  }
}
