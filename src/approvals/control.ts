/**
 * The operators' side of approval gates, run by `intake` (the API's write role):
 * the pending list, a decision, and the reaper's timeouts. A decision is
 * committed with the task put back to `queued` before anything is announced;
 * the wake-up that follows is a hint, and a lost one (every planner down, the
 * queue restarted) leaves the task for the reaper to find by its fresh
 * `wakeup_at`: the decision itself is in Postgres and cannot be lost.
 */
import type { EventEmitter } from "../agent/events";
import {
  APPROVAL_DECIDED_EVENT,
  ApprovalBodySchema,
  ApprovalQuerySchema,
  parseParams,
  type Approval,
  type ApprovalDecided,
  type ApprovalDecidedEvent,
  type DecideResult,
  type PendingApproval,
  type PendingApprovals,
  type PendingApprovalView,
  type TaskEventSink,
  type WakeUp,
} from "../contracts";
import { ApprovalDecidedError, messageOf, NotAwaitingApprovalError, TaskNotFoundError, ValidationError } from "../errors";
import type { Logger } from "../logging";
import type { TaskStore } from "../store/types";

export interface ApprovalControlDeps {
  store: Pick<TaskStore, "decideApproval" | "listApprovals" | "expireApprovals">;
  /** The wake-up of a decided task (the publish after a commit: CLAWFLEET_FAULT_DROP_WAKEUPS drops it as a crash would). */
  wakeUps: { publishCommitted(w: WakeUp): Promise<void> };
  logger: Pick<Logger, "info" | "warn">;
  /**
   * `emitter`: the broker, for `clawfleet.control.approval_decided`; `sink`: the task lifecycle events (a
   * timed-out task's `clawfleet.task.failed`); `node`: this node's id, named in both. @default none emitted
   */
  events?: { emitter: EventEmitter; sink: TaskEventSink; node: string };
}

/** Tasks a reaper sweep times out at most, per sweep. */
export const EXPIRE_BATCH = 100;

export class ApprovalControl {
  constructor(private readonly deps: ApprovalControlDeps) {}

  /** `GET /v1/approvals?status=pending`: the calls tasks wait on, oldest request first; `query` as the client sent it. */
  async pending(query: unknown, tenant?: string): Promise<PendingApprovals> {
    const q = parseParams(ApprovalQuerySchema, query ?? {}, "invalid query");
    const rows = await this.deps.store.listApprovals(q.limit, tenant);
    return { approvals: rows.map(pendingView) };
  }

  /**
   * `POST /v1/tasks/{id}/approval`: records `body`'s decision on the task's pending call, exactly once, and
   * wakes a planner. A task of no one's (or another tenant's) is TaskNotFoundError; a call decided before is
   * ApprovalDecidedError; a task waiting on no call, or whose call's deadline passed, NotAwaitingApprovalError.
   */
  async decide(taskId: string, body: unknown, by: string, tenant?: string): Promise<ApprovalDecided> {
    if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new ValidationError('the request body must be a JSON object: {"decision": "approve" | "reject", "reason"?: string}', { field: "body" });
    }
    const b = parseParams(ApprovalBodySchema, body, "invalid decision");
    const decision = { decision: b.decision, by, ...(b.reason !== undefined ? { reason: b.reason } : {}), ...(b.tool_use_id !== undefined ? { tool_use_id: b.tool_use_id } : {}) };
    const r = await this.deps.store.decideApproval(taskId, decision, tenant);
    const approval = refused(taskId, r);
    this.deps.logger.info(
      { taskId: approval.task_id, event: "approval.decided", step: approval.step, tool: approval.tool, decision: b.decision, by },
      `${approval.tool} (step ${approval.step}) ${b.decision === "approve" ? "approved" : "rejected"} by ${by}`,
    );
    this.announce(approval, r.tenant ?? "", b.decision, by);
    await this.deps.wakeUps.publishCommitted({ taskId: approval.task_id, reason: "released" });
    return { task_id: approval.task_id, decision: b.decision, status: r.status ?? "queued" };
  }

  /**
   * The reaper's part, on its one leader: fails the tasks whose call waited past its deadline (the call is
   * never made) and announces each. Answers how many; a full batch is left to the next sweep to go on with.
   */
  async expire(limit = EXPIRE_BATCH): Promise<number> {
    const expired = await this.deps.store.expireApprovals(limit);
    for (const { task, approval } of expired) {
      this.deps.logger.warn(
        { taskId: task.id, event: "approval.timed_out", step: approval.step, tool: approval.tool, deadline: approval.deadline },
        `no decision on ${approval.tool} (step ${approval.step}) by ${approval.deadline}: task failed, the call was not made`,
      );
      const events = this.deps.events;
      if (!events) continue;
      events.sink("clawfleet.task.failed", {
        task_id: task.id,
        agent: task.agent,
        tenant: task.tenant,
        prompt_version: task.prompt_version,
        status: "failed",
        step: task.steps,
        usage: task.usage,
        at: task.finished_at ?? new Date().toISOString(),
        node: events.node,
        error: task.error ?? { type: "approval_timeout", message: "the approval timed out" },
      });
    }
    return expired.length;
  }

  /** `clawfleet.control.approval_decided`, after the commit; a failed emit is logged, never the caller's failure. */
  private announce(approval: Approval, tenant: string, decision: ApprovalDecidedEvent["decision"], by: string): void {
    const events = this.deps.events;
    if (!events) return;
    const payload: ApprovalDecidedEvent = {
      task_id: approval.task_id,
      tenant,
      step: approval.step,
      tool: approval.tool,
      decision,
      by,
      reason: approval.reason,
      at: approval.decided_at ?? new Date().toISOString(),
      node: events.node,
    };
    const failed = (err: unknown) => this.deps.logger.warn({ event: "emit.failed", taskId: approval.task_id, name: APPROVAL_DECIDED_EVENT, err: messageOf(err) }, "event emit failed");
    try {
      void Promise.resolve(events.emitter.emit(APPROVAL_DECIDED_EVENT, payload)).catch(failed);
    } catch (err) {
      failed(err);
    }
  }
}

/** The recorded approval of `r`, or the error that says why there is none. */
function refused(taskId: string, r: DecideResult): Approval {
  const a = r.approval;
  switch (r.outcome) {
    case "recorded":
      if (a === null) break;
      return a;
    case "not_found":
      throw new TaskNotFoundError(`no task ${taskId}`, { id: taskId });
    case "already_decided":
      if (a === null) break;
      throw new ApprovalDecidedError(
        `the call of task ${a.task_id} to ${a.tool} (step ${a.step}) was already decided: ${a.decision}${a.decided_by !== null ? ` by ${a.decided_by}` : ""}${a.decided_at !== null ? ` at ${a.decided_at}` : ""}`,
        { task_id: a.task_id, step: a.step, tool: a.tool, decision: a.decision, by: a.decided_by, decided_at: a.decided_at, status: r.status },
      );
    case "expired":
      if (a === null) break;
      throw new NotAwaitingApprovalError(`the call of task ${a.task_id} to ${a.tool} (step ${a.step}) passed its deadline ${a.deadline}; the task fails (approval_timeout)`, {
        task_id: a.task_id,
        status: r.status,
        deadline: a.deadline,
      });
    case "not_awaiting":
      if (a?.decision === "timeout") {
        throw new NotAwaitingApprovalError(`the call of task ${a.task_id} to ${a.tool} (step ${a.step}) timed out at ${a.deadline}; task is ${r.status ?? "unknown"}`, {
          task_id: a.task_id,
          status: r.status,
          deadline: a.deadline,
        });
      }
      throw new NotAwaitingApprovalError(`task ${taskId} is ${r.status ?? "unknown"}: it waits on no call for a decision`, { task_id: taskId, status: r.status });
  }
  throw new NotAwaitingApprovalError(`task ${taskId}: no call to decide`, { task_id: taskId, status: r.status });
}

function pendingView(p: PendingApproval): PendingApprovalView {
  return {
    task_id: p.task_id,
    agent: p.agent,
    prompt_version: p.prompt_version,
    step: p.step,
    tool_use: { id: p.tool_use_id, name: p.tool, input: p.input },
    requested_at: p.requested_at,
    deadline: p.deadline,
  };
}
