import type { NewStep, NewTask, StepRecord, TaskError, TaskRecord, TaskStatus, Usage } from "../domain";

export interface CreateTaskResult {
  task: TaskRecord;
  /** False when the idempotency key already named a task younger than 24 h: `task` is that one. */
  created: boolean;
}

export interface ClaimResult {
  task: TaskRecord;
  fence: number;
}

export interface TaskOutcome {
  status: "succeeded" | "failed";
  result?: unknown;
  error?: TaskError;
}

export interface DeadLetter {
  task_id: string;
  agent: string;
  error: TaskError;
  attempts: number;
  created_at: string;
}

/**
 * The system of record. Postgres in distributed mode, PGlite embedded; one SQL
 * code path, one contract test suite. Every write by a worker carries the fencing
 * token it got from `claimTask`; a stale token raises `StaleFenceError`.
 */
export interface TaskStore {
  migrate(): Promise<void>;
  /** Commits the task (and the idempotency key, if any) atomically. */
  createTask(task: NewTask, idempotencyKey?: string): Promise<CreateTaskResult>;
  getTask(id: string): Promise<TaskRecord | null>;
  listSteps(taskId: string): Promise<StepRecord[]>;
  /**
   * Takes the task for a new attempt: bumps `fence` and `attempts`, sets status
   * `running` (and `started_at` the first time). Null when the task is terminal,
   * unknown, or not in `queued`/`running`.
   */
  claimTask(id: string, owner: string): Promise<ClaimResult | null>;
  /** Appends one checkpoint and adds its usage to the task. StaleFenceError if `fence` is not current. */
  appendStep(taskId: string, fence: number, step: NewStep, usageDelta?: Usage): Promise<void>;
  /** Terminal outcome. StaleFenceError if `fence` is not current. Failures also land in the dead-letter list. */
  finishTask(taskId: string, fence: number, outcome: TaskOutcome): Promise<void>;
  /**
   * Hands the task back (`queued`); fenced. `countAttempt: false` (a graceful
   * scale-down, not a failure) gives the attempt back so rolling deploys do not
   * push a long task towards its attempt limit. @default countAttempt true
   */
  releaseTask(taskId: string, fence: number, opts?: { countAttempt?: boolean }): Promise<void>;
  /** Records that a wake-up was published now. */
  touchWakeup(taskIds: readonly string[]): Promise<void>;
  /** `queued` tasks whose last wake-up is older than `olderThanMs`. */
  listStaleQueued(olderThanMs: number, limit: number): Promise<string[]>;
  /** `running` tasks (the reaper checks their leases). */
  listRunning(limit: number): Promise<Array<{ id: string; fence: number; updated_at: string }>>;
  countByStatus(): Promise<Record<TaskStatus, number>>;
  listDeadLetters(limit: number): Promise<DeadLetter[]>;
  /** Puts a failed task back to `queued` with fresh attempts and removes its dead letter. */
  redrive(taskId: string): Promise<boolean>;
  close(): Promise<void>;
}
