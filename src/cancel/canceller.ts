/**
 * Cancelling a task, intake's side (README, "Cancelling a task"): one store
 * statement ends the task and bumps its fence; then, when a planner was running
 * it, that planner is asked directly to abort the attempt (once it answers, no
 * call of the task starts there), with a broadcast to every planner
 * and executor as the backstop. The answer goes out after the planner's ack or
 * the timeout, whichever comes first: a planner that does not answer in time is
 * dead or cut off, and whatever it still writes is refused by the fence.
 */
import { emitCancelled } from "../agent/events";
import type { Cancelled, CancelResult, CancelTaskParams, TaskCancelledControl, TaskEventSink } from "../contracts";
import { TaskFinishedError, TaskNotFoundError, messageOf } from "../errors";
import type { TaskStore } from "../store/types";

/**
 * How long the planner running the task gets to acknowledge its abort. Only its ack makes "no call of the task
 * starts after the answer" hold, so this is sized for a planner that is alive but slow (a busy event loop, a
 * throttled container), not for the usual answer: that comes in milliseconds and does not wait for this.
 * A node the broker knows is gone (stopped, or silent past its heartbeat timeout) is refused at once; one that
 * is cut off or frozen costs this long until then.
 */
export const ABORT_ACK_TIMEOUT_MS = 1_000;

export interface CancellerDeps {
  store: Pick<TaskStore, "cancelTask">;
  /** Asks planner node `nodeId` to abort its attempt at `taskId`; rejects on a timeout or an unreachable node. */
  abortOn(nodeId: string, taskId: string, reason: string | undefined, timeoutMs: number): Promise<unknown>;
  /** Broadcasts the control event to every planner and executor; must not throw. */
  broadcast(event: TaskCancelledControl): void;
  /** Where `clawfleet.task.cancelled` goes, and the node named in it. @default none emitted */
  events?: { sink: TaskEventSink; node: string };
  logger: { info(obj: unknown, msg?: string): void; warn(obj: unknown, msg?: string): void };
  /** @default ABORT_ACK_TIMEOUT_MS */
  ackTimeoutMs?: number;
}

/** The statuses a running attempt may hold the task in: its planner is told. */
const HELD = new Set(["running", "awaiting_approval"]);

export class Canceller {
  constructor(private readonly deps: CancellerDeps) {}

  /**
   * The task is `cancelled` when this returns. An unknown task (or another tenant's) is TaskNotFoundError;
   * one that already succeeded or failed is TaskFinishedError (409). A task cancelled before is answered the
   * same again, and nothing is done twice.
   */
  async cancel(p: CancelTaskParams): Promise<Cancelled> {
    // Task ids are UUIDs, case-insensitive; the store holds them in lower case.
    const taskId = p.taskId.toLowerCase();
    const r = await this.deps.store.cancelTask(taskId, p.tenant, p.by, p.reason);
    switch (r.outcome) {
      case "not_found":
        throw new TaskNotFoundError(`no task ${p.taskId}`, { id: p.taskId });
      case "finished":
        throw new TaskFinishedError(`task ${taskId} already ${r.previous_status ?? "finished"}; only a task that has not finished can be cancelled`, {
          id: taskId,
          status: r.previous_status,
        });
      case "already_cancelled":
        return { id: taskId, status: "cancelled" };
      case "cancelled":
        await this.announce(p, r);
        return { id: taskId, status: "cancelled" };
    }
  }

  /** After the commit: the event, the broadcast, and the planner's ack (or its timeout). */
  private async announce(p: CancelTaskParams, r: CancelResult): Promise<void> {
    const { task, previous_status: previous, lease_owner: owner } = r;
    if (!task || !previous) return;
    const node = this.deps.events?.node ?? "unknown";
    this.deps.logger.info({ taskId: task.id, event: "task.cancelled", by: p.by, previous_status: previous, lease_owner: owner }, "task cancelled");
    if (this.deps.events) emitCancelled(this.deps.events.sink, this.deps.events.node, task);
    this.deps.broadcast({
      task_id: task.id,
      tenant: task.tenant,
      previous_status: previous,
      by: p.by,
      ...(p.reason !== undefined ? { reason: p.reason } : {}),
      at: task.finished_at ?? new Date().toISOString(),
      node,
    });
    if (owner === null || !HELD.has(previous)) return;
    try {
      await this.deps.abortOn(owner, task.id, p.reason, this.deps.ackTimeoutMs ?? ABORT_ACK_TIMEOUT_MS);
    } catch (err) {
      // Its writes are fenced off whatever it does; the broadcast may still reach it.
      this.deps.logger.warn({ taskId: task.id, event: "task.cancel_unacknowledged", node: owner, err: messageOf(err) }, "the planner running the task did not acknowledge the cancel (timed out, or unreachable)");
    }
  }
}
