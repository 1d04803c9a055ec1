/**
 * `TaskStore` over the broker: every method is a call to the `checkpoint`
 * service, which alone holds the database pool. Errors (a stale fence above
 * all) arrive as the same classes thanks to the error regenerator.
 */
import type { NewStep, NewTask, StepRecord, TaskRecord, TaskStatus, Usage } from "../domain";
import type { ClaimResult, CreateTaskResult, DeadLetter, TaskOutcome, TaskStore } from "./types";

export type Caller = <T>(action: string, params: Record<string, unknown>) => Promise<T>;

export class RemoteTaskStore implements TaskStore {
  constructor(
    private readonly call: Caller,
    private readonly service = "checkpoint",
  ) {}

  private c<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    return this.call<T>(`${this.service}.${method}`, params);
  }

  async migrate(): Promise<void> {
    // The checkpoint service migrates at its start.
  }
  createTask(task: NewTask, idempotencyKey?: string): Promise<CreateTaskResult> {
    return this.c("createTask", { task, idempotencyKey });
  }
  getTask(id: string): Promise<TaskRecord | null> {
    return this.c("getTask", { id });
  }
  listSteps(taskId: string): Promise<StepRecord[]> {
    return this.c("listSteps", { taskId });
  }
  claimTask(id: string, owner: string): Promise<ClaimResult | null> {
    return this.c("claimTask", { id, owner });
  }
  appendStep(taskId: string, fence: number, step: NewStep, usageDelta?: Usage): Promise<void> {
    return this.c("appendStep", { taskId, fence, step, usageDelta });
  }
  finishTask(taskId: string, fence: number, outcome: TaskOutcome): Promise<void> {
    return this.c("finishTask", { taskId, fence, outcome });
  }
  releaseTask(taskId: string, fence: number, opts?: { countAttempt?: boolean }): Promise<void> {
    return this.c("releaseTask", { taskId, fence, countAttempt: opts?.countAttempt ?? true });
  }
  touchWakeup(taskIds: readonly string[]): Promise<void> {
    return this.c("touchWakeup", { taskIds });
  }
  listStaleQueued(olderThanMs: number, limit: number): Promise<string[]> {
    return this.c("listStaleQueued", { olderThanMs, limit });
  }
  listRunning(limit: number): Promise<Array<{ id: string; fence: number; updated_at: string }>> {
    return this.c("listRunning", { limit });
  }
  countByStatus(): Promise<Record<TaskStatus, number>> {
    return this.c("countByStatus");
  }
  listDeadLetters(limit: number): Promise<DeadLetter[]> {
    return this.c("listDeadLetters", { limit });
  }
  redrive(taskId: string): Promise<boolean> {
    return this.c("redrive", { taskId });
  }
  async close(): Promise<void> {
    // Nothing held locally.
  }
}
