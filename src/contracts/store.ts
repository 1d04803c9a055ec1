/**
 * The store's methods as the `checkpoint` service serves them, one entry per
 * method: the action's params schema, the answer's schema, and the mappings
 * between the method's arguments and the params. `TaskStore` is typed from
 * this table, and both `RemoteTaskStore` and the service's actions are built
 * from it: a new store method is an entry here and its SQL in `PgTaskStore`.
 */
import { z } from "zod";
import { NewStepSchema, StepRecordSchema, type NewStep } from "./checkpoint";
import {
  ClaimResultSchema,
  CreateTaskResultSchema,
  DeadLetterSchema,
  FenceSchema,
  IdempotencyKeySchema,
  NewTaskSchema,
  RunningTaskSchema,
  StepNumberSchema,
  TaskCountsSchema,
  TaskIdSchema,
  TaskOutcomeSchema,
  TaskRecordSchema,
  TaskRefSchema,
  TimestampSchema,
  UsageSchema,
  type NewTask,
  type TaskOutcome,
  type Usage,
} from "./task";
import { ToolCallEntrySchema, ToolCallMarkSchema, ToolOutcomeSchema, type ToolCallMark, type ToolOutcome } from "./tools";
import {
  ClaimExclusionsSchema,
  NewSwitchChangeSchema,
  ScopeStatusSchema,
  SwitchChangeSchema,
  SwitchKindSchema,
  SwitchNameSchema,
  SwitchSchema,
  TaskScopeSchema,
  type ClaimExclusions,
  type NewSwitchChange,
  type ScopeStatus,
  type SwitchKind,
  type TaskScope,
} from "./switches";
import {
  AgentNameSchema,
  AgentSourceSchema,
  AgentVersionInfoSchema,
  AgentVersionSchema,
  CanaryStepsSchema,
  DecisionResultSchema,
  FileSyncResultSchema,
  MinTasksPerStepSchema,
  NewAgentVersionSchema,
  PromptVersionSchema,
  RolloutChangeSchema,
  RolloutSchema,
  type NewAgentVersion,
  type RolloutChange,
} from "./rollout";
import { CanaryStatsSchema } from "./canaryJudge";
import { CancelledBySchema, CancelReasonSchema, CancelResultSchema } from "./cancel";
import {
  ApprovalRequestSchema,
  ApprovalSchema,
  DecideResultSchema,
  DecisionSchema,
  ExpiredApprovalSchema,
  PendingApprovalSchema,
  type ApprovalRequest,
  type Decision,
} from "./approvals";
import { TaskListQuerySchema, TaskListSchema, type TaskListQuery } from "./taskList";
import { OpenWorkSchema } from "./dashboard";
import { TaskWebhookViewSchema, WebhookAttemptResultSchema, WebhookClaimSchema, WebhookIdSchema, type WebhookAttemptResult } from "./webhooks";
import {
  ApiKeyInfoSchema,
  ApiKeyRecordSchema,
  KeyRefSchema,
  KeyReplacementSchema,
  NewApiKeySchema,
  TenantSchema,
  type KeyReplacement,
  type NewApiKey,
} from "./keys";

interface MethodSpec<P extends z.ZodType, A extends unknown[], R extends z.ZodType> {
  params: P;
  /** The answer's shape. It documents the wire; answers are not validated again. */
  result: R;
  /** A call's arguments as the action's params: the caller's side. */
  toParams: (...args: A) => z.input<P>;
  /** The validated params as the method's arguments: the service's side. */
  toArgs: (p: z.output<P>) => A;
}

/**
 * An entry. `toArgs` comes in a second call so that the argument list is taken
 * from `toParams` alone (names and optional arguments included) and `toArgs`
 * is checked against it.
 */
const method = <P extends z.ZodType, A extends unknown[], R extends z.ZodType>(spec: Omit<MethodSpec<P, A, R>, "toArgs">) => ({
  toArgs: (toArgs: (p: z.output<P>) => A): MethodSpec<P, A, R> => ({ ...spec, toArgs }),
});

const limit = z.number().int().positive().max(10_000);
/** A tool call's idempotency key, `${taskId}:${step}`. */
const toolCallKey = z.string().min(1).max(255);

/** A tenant's cap on running tasks; null: no cap. */
const runningCap = z.number().int().positive().nullable();
/** The running caps a fair claim honours: `default` for every tenant, `tenants` over it per tenant. */
export const RunningCapsSchema = z.object({ default: runningCap, tenants: z.record(TenantSchema, runningCap) });
export type RunningCaps = z.infer<typeof RunningCapsSchema>;

/** A task named with, from the API, the caller's tenant: another tenant's task is none. */
const tenantTask = {
  params: z.object({ taskId: TaskRefSchema, tenant: TenantSchema.optional() }),
  toParams: (taskId: string, tenant?: string) => ({ taskId, ...(tenant !== undefined ? { tenant } : {}) }),
};
const tenantTaskArgs = (p: { taskId: string; tenant?: string | undefined }): [taskId: string, tenant?: string] =>
  p.tenant === undefined ? [p.taskId] : [p.taskId, p.tenant];

/** Up to `limit` rows, with, from the API, only the caller's tenant's. */
const tenantList = {
  params: z.object({ limit, tenant: TenantSchema.optional() }),
  toParams: (limit: number, tenant?: string) => ({ limit, ...(tenant !== undefined ? { tenant } : {}) }),
};
const tenantListArgs = (p: { limit: number; tenant?: string | undefined }): [limit: number, tenant?: string] => (p.tenant === undefined ? [p.limit] : [p.limit, p.tenant]);

/** The checkpoint a terminal write carries (`finishWithStep`'s `last`): the step and the usage it adds to the task. */
export const LastCheckpointSchema = z.object({ step: NewStepSchema, usageDelta: UsageSchema.optional() });
export type LastCheckpoint = z.infer<typeof LastCheckpointSchema>;

/** One task of a `createTasks` call: `createTask`'s arguments. */
export const CreateTaskItemSchema = z.object({ task: NewTaskSchema, idempotencyKey: IdempotencyKeySchema.optional() });
export type CreateTaskItem = z.infer<typeof CreateTaskItemSchema>;

/** The most items one `createTasks` call carries. */
export const CREATE_TASKS_MAX = 256;

/**
 * One item's answer in a `createTasks` call: its `createTask` answer, or the error a lone `createTask`
 * would have thrown, in its wire form (`type`, `message`, `data`; restored with `restoreError`).
 */
export const CreateTaskOutcomeSchema = z.union([
  z.object({ ok: z.literal(true), result: CreateTaskResultSchema }),
  z.object({ ok: z.literal(false), error: z.object({ type: z.string(), message: z.string(), data: z.record(z.string(), z.unknown()).optional() }) }),
]);
export type CreateTaskOutcome = z.infer<typeof CreateTaskOutcomeSchema>;

export const STORE_METHODS = {
  /** Commits the task (and the idempotency key, if any) atomically. */
  createTask: method({
    params: z.object({ task: NewTaskSchema, idempotencyKey: IdempotencyKeySchema.optional() }),
    result: CreateTaskResultSchema,
    toParams: (task: NewTask, idempotencyKey?: string) => ({ task, idempotencyKey }),
  }).toArgs((p) => [p.task, p.idempotencyKey]),
  /**
   * Group commit (src/queue/createBatcher.ts): several `createTask`s in one call, answered item by item in
   * their order, each with what a lone `createTask` of it answers (its task, or its error): one item's
   * failure is its own. Items without an idempotency key are committed together, in one statement.
   */
  createTasks: method({
    params: z.object({ items: z.array(CreateTaskItemSchema).min(1).max(CREATE_TASKS_MAX) }),
    result: z.array(CreateTaskOutcomeSchema),
    toParams: (items: readonly CreateTaskItem[]) => ({ items: [...items] }),
  }).toArgs((p) => [p.items]),
  /** The task `tenant`'s idempotency key names while it is live (under 24 h old); null for none. */
  taskByIdempotencyKey: method({
    params: z.object({ key: IdempotencyKeySchema, tenant: TenantSchema }),
    result: TaskRecordSchema.nullable(),
    toParams: (key: string, tenant: string) => ({ key, tenant }),
  }).toArgs((p) => [p.key, p.tenant]),
  /** With `tenant`, only that tenant's task: another tenant's is null, like an unknown one. */
  getTask: method({
    params: z.object({ id: TaskRefSchema, tenant: TenantSchema.optional() }),
    result: TaskRecordSchema.nullable(),
    toParams: (id: string, tenant?: string) => ({ id, ...(tenant !== undefined ? { tenant } : {}) }),
  }).toArgs((p) => (p.tenant === undefined ? [p.id] : [p.id, p.tenant])),
  /** With `tenant`, only that tenant's task's steps (none for another tenant's task). */
  listSteps: method({ ...tenantTask, result: z.array(StepRecordSchema) }).toArgs(tenantTaskArgs),
  /** Steps after `afterStep`, in order, at most `limit` of them: a live stream's next page. With `tenant`, only that tenant's task's. */
  listStepsAfter: method({
    params: z.object({ taskId: TaskRefSchema, afterStep: z.number().int().nonnegative(), limit, tenant: TenantSchema.optional() }),
    result: z.array(StepRecordSchema),
    toParams: (taskId: string, afterStep: number, limit: number, tenant?: string) => ({ taskId, afterStep, limit, ...(tenant !== undefined ? { tenant } : {}) }),
  }).toArgs((p) => (p.tenant === undefined ? [p.taskId, p.afterStep, p.limit] : [p.taskId, p.afterStep, p.limit, p.tenant])),
  /**
   * Takes the task for a new attempt: bumps `fence` and `attempts`, sets status
   * `running` (and `started_at` the first time). Null when the task is terminal,
   * unknown, or not in `queued`/`running`.
   */
  claimTask: method({
    params: z.object({ id: TaskRefSchema, owner: z.string().min(1) }),
    result: ClaimResultSchema.nullable(),
    toParams: (id: string, owner: string) => ({ id, owner }),
  }).toArgs((p) => [p.id, p.owner]),
  /**
   * A wake-up's claim (migration 006): takes the fairest queued task as `claimTask` takes one, or answers
   * null when none is claimable (none queued, or every tenant with queued work at its cap). Fairest: the
   * head (priority, then age) of the tenant with the fewest running tasks among those under their cap.
   * Tasks of the agents and prompt versions `exclude` names (paused by a kill switch) are passed over.
   */
  claimNext: method({
    params: z.object({ owner: z.string().min(1), caps: RunningCapsSchema, exclude: ClaimExclusionsSchema.optional() }),
    result: ClaimResultSchema.nullable(),
    toParams: (owner: string, caps: RunningCaps, exclude?: ClaimExclusions) => ({ owner, caps, ...(exclude !== undefined ? { exclude } : {}) }),
  }).toArgs((p) => (p.exclude === undefined ? [p.owner, p.caps] : [p.owner, p.caps, p.exclude])),
  /** The queued task of `tenant` a fair claim would take first; null when the tenant has none queued. */
  queuedHead: method({
    params: z.object({ tenant: TenantSchema }),
    result: TaskIdSchema.nullable(),
    toParams: (tenant: string) => ({ tenant }),
  }).toArgs((p) => [p.tenant]),
  /** Kill switches (migration 011): sets one and appends the change to its history, in one statement. */
  setSwitch: method({
    params: z.object({ change: NewSwitchChangeSchema }),
    result: SwitchSchema,
    toParams: (change: NewSwitchChange) => ({ change }),
  }).toArgs((p) => [p.change]),
  /** Every switch ever set (a lifted one with `paused: false`), by kind and name: a small table, read whole. */
  listSwitches: method({
    params: z.object({}),
    result: z.array(SwitchSchema),
    toParams: () => ({}),
  }).toArgs(() => []),
  /** The newest changes first; with `kind` (and `name`), only that kind's (that switch's). */
  listSwitchChanges: method({
    params: z.object({ limit, kind: SwitchKindSchema.optional(), name: SwitchNameSchema.optional() }),
    result: z.array(SwitchChangeSchema),
    toParams: (limit: number, scope?: { kind?: SwitchKind; name?: string }) => ({ limit, ...scope }),
  }).toArgs((p) => [p.limit, { ...(p.kind !== undefined ? { kind: p.kind } : {}), ...(p.name !== undefined ? { name: p.name } : {}) }]),
  /** Ids of the tasks of an agent or prompt version in `status`, oldest first, at most `limit`. */
  tasksOfScope: method({
    params: z.object({ scope: TaskScopeSchema, status: ScopeStatusSchema, limit }),
    result: z.array(TaskIdSchema),
    toParams: (scope: TaskScope, status: ScopeStatus, limit: number) => ({ scope, status, limit }),
  }).toArgs((p) => [p.scope, p.status, p.limit]),
  /**
   * Appends one checkpoint and adds its usage to the task. StaleFenceError if `fence` is not current.
   * `marks`: side-effect ledger rows (starts 1, outcome unknown) for the calls a model turn's checkpoint asks
   * for, written in the same commit as the step, or not at all; rows that exist already are left as they are.
   * A store that writes them answers `{ marked: true }`; one that predates marks answers nothing, and its
   * caller must not count the calls as started.
   */
  appendStep: method({
    params: z.object({
      taskId: TaskRefSchema,
      fence: FenceSchema,
      step: NewStepSchema,
      usageDelta: UsageSchema.optional(),
      marks: z.array(ToolCallMarkSchema).max(1000).optional(),
    }),
    result: z.object({ marked: z.literal(true) }).optional(),
    toParams: (taskId: string, fence: number, step: NewStep, usageDelta?: Usage, marks?: readonly ToolCallMark[]) => ({
      taskId,
      fence,
      step,
      usageDelta,
      ...(marks !== undefined && marks.length > 0 ? { marks: [...marks] } : {}),
    }),
  }).toArgs((p) => (p.marks === undefined ? [p.taskId, p.fence, p.step, p.usageDelta] : [p.taskId, p.fence, p.step, p.usageDelta, p.marks])),
  /**
   * Checkpoints of one task, in step order (a model turn's and its calls' results): in one commit when the task's
   * row is free; otherwise (its row held by another transaction, a step already stored: a retry) one by one, in
   * step order, so a failure or a crash in between leaves the first ones stored, as separate checkpoints would.
   * Fenced as `appendStep` is: under a stale fence none is stored. A retry of the same steps is a no-op, one of them
   * with other content a `DuplicateStepError`. No ledger marks: a turn whose calls need them is written with
   * `appendStep`. A method of its own: a checkpoint service that predates it has no such action, and its caller then
   * writes the steps one by one.
   */
  appendSteps: method({
    params: z.object({ taskId: TaskRefSchema, fence: FenceSchema, steps: z.array(LastCheckpointSchema).min(1).max(1000) }),
    result: z.void(),
    toParams: (taskId: string, fence: number, steps: readonly LastCheckpoint[]) => ({ taskId, fence, steps: [...steps] }),
  }).toArgs((p) => [p.taskId, p.fence, p.steps]),
  /** Terminal outcome. StaleFenceError if `fence` is not current. Failures also land in the dead-letter list. */
  finishTask: method({
    params: z.object({ taskId: TaskRefSchema, fence: FenceSchema, outcome: TaskOutcomeSchema }),
    result: z.void(),
    toParams: (taskId: string, fence: number, outcome: TaskOutcome) => ({ taskId, fence, outcome }),
  }).toArgs((p) => [p.taskId, p.fence, p.outcome]),
  /**
   * `finishTask` with `last`, the checkpoint the attempt ends on (the model's final answer), written with the
   * outcome in one statement, so the two are stored together or not at all; fenced as `appendStep` is, and a
   * retry of the same write is a no-op, the same step with other content a `DuplicateStepError`. A method of
   * its own, not an optional `last` of `finishTask`: a checkpoint service that predates it has no such action
   * (its caller then writes the step and the outcome apart), where its `finishTask` would drop the step.
   */
  finishWithStep: method({
    params: z.object({ taskId: TaskRefSchema, fence: FenceSchema, outcome: TaskOutcomeSchema, last: LastCheckpointSchema }),
    result: z.void(),
    toParams: (taskId: string, fence: number, outcome: TaskOutcome, last: LastCheckpoint) => ({ taskId, fence, outcome, last }),
  }).toArgs((p) => [p.taskId, p.fence, p.outcome, p.last]),
  /**
   * Hands the task back (`queued`); fenced. `countAttempt: false` (a graceful
   * scale-down, not a failure) gives the attempt back so rolling deploys do not
   * push a long task towards its attempt limit. @default countAttempt true
   */
  releaseTask: method({
    params: z.object({
      taskId: TaskRefSchema,
      fence: FenceSchema,
      countAttempt: z.boolean().default(true),
      /** The task is not claimed again for this long (a retry's backoff). @default 0 */
      notBeforeMs: z.number().int().nonnegative().max(86_400_000).default(0),
    }),
    result: z.void(),
    toParams: (taskId: string, fence: number, opts?: { countAttempt?: boolean; notBeforeMs?: number }) => ({
      taskId,
      fence,
      countAttempt: opts?.countAttempt ?? true,
      notBeforeMs: opts?.notBeforeMs ?? 0,
    }),
  }).toArgs((p) => [p.taskId, p.fence, { countAttempt: p.countAttempt, notBeforeMs: p.notBeforeMs }]),
  /** Records that a wake-up was published now. */
  touchWakeup: method({
    params: z.object({ taskIds: z.array(TaskRefSchema).max(10_000) }),
    result: z.void(),
    toParams: (taskIds: readonly string[]) => ({ taskIds: [...taskIds] }),
  }).toArgs((p) => [p.taskIds]),
  /** `queued` tasks whose last wake-up is older than `olderThanMs`. */
  listStaleQueued: method({
    params: z.object({ olderThanMs: z.number().int().nonnegative(), limit }),
    result: z.array(TaskIdSchema),
    toParams: (olderThanMs: number, limit: number) => ({ olderThanMs, limit }),
  }).toArgs((p) => [p.olderThanMs, p.limit]),
  /** `running` tasks (the reaper checks their leases). */
  listRunning: method({
    params: z.object({ limit }),
    result: z.array(RunningTaskSchema),
    toParams: (limit: number) => ({ limit }),
  }).toArgs((p) => [p.limit]),
  /**
   * Deletes up to `limit` idempotency keys past their 24 h window (the oldest first) and answers how many
   * went: an expired key already answers nothing (`createTask` replaces it), so this only bounds the table.
   */
  purgeIdempotencyKeys: method({
    params: z.object({ limit }),
    result: z.number().int().nonnegative(),
    toParams: (limit: number) => ({ limit }),
  }).toArgs((p) => [p.limit]),
  countByStatus: method({
    params: z.object({}),
    result: TaskCountsSchema,
    toParams: () => ({}),
  }).toArgs(() => []),
  /** Tasks not finished yet by status, and the dead letters, of every tenant: `GET /v1/queues` (one index range, not every task). */
  countOpenWork: method({
    params: z.object({}),
    result: OpenWorkSchema,
    toParams: () => ({}),
  }).toArgs(() => []),
  /** The cost (USD) of `agent`'s tasks created at or after `since`: an agent's daily cost cap (migration 009's index). */
  agentCostSince: method({
    params: z.object({ agent: z.string().min(1).max(100), since: TimestampSchema }),
    result: z.number().nonnegative(),
    toParams: (agent: string, since: string) => ({ agent, since }),
  }).toArgs((p) => [p.agent, p.since]),
  /** A page of one tenant's tasks, newest first (src/store/taskList.ts); `next_cursor` asks for the next. */
  listTasks: method({
    params: TaskListQuerySchema,
    result: TaskListSchema,
    toParams: (query: TaskListQuery) => query,
  }).toArgs((p) => [p]),
  /** With `tenant`, only that tenant's dead letters. */
  listDeadLetters: method({
    params: z.object({ limit: limit.default(100), tenant: TenantSchema.optional() }),
    result: z.array(DeadLetterSchema),
    toParams: (limit: number, tenant?: string) => ({ limit, ...(tenant !== undefined ? { tenant } : {}) }),
  }).toArgs((p) => (p.tenant === undefined ? [p.limit] : [p.limit, p.tenant])),
  /** Puts a failed task back to `queued` with fresh attempts and removes its dead letter; with `tenant`, only that tenant's. */
  redrive: method({ ...tenantTask, result: z.boolean() }).toArgs(tenantTaskArgs),
  /**
   * Cancels a `queued`, `running` or `awaiting_approval` task in one statement (migration 012): status
   * `cancelled`, `finished_at`, who and why, and a fence bump that refuses every later write of the attempt
   * running it. Answers what it replaced (see CancelResultSchema); with `tenant`, only that tenant's task.
   */
  cancelTask: method({
    params: z.object({ taskId: TaskRefSchema, tenant: TenantSchema.optional(), by: CancelledBySchema, reason: CancelReasonSchema.optional() }),
    result: CancelResultSchema,
    toParams: (taskId: string, tenant: string | undefined, by: string, reason?: string) => ({
      taskId,
      by,
      ...(tenant !== undefined ? { tenant } : {}),
      ...(reason !== undefined ? { reason } : {}),
    }),
  }).toArgs((p) => [p.taskId, p.tenant, p.by, p.reason]),
  /**
   * Adds usage to the task without a fence: what an attempt spent on a call it could not checkpoint because
   * its task was cancelled under it (an aborted model call's input). False when there is no such task.
   */
  addUsage: method({
    params: z.object({ taskId: TaskRefSchema, usage: UsageSchema }),
    result: z.boolean(),
    toParams: (taskId: string, usage: Usage) => ({ taskId, usage }),
  }).toArgs((p) => [p.taskId, p.usage]),
  /**
   * Approval gates (migration 010, src/store/approvals.ts). `awaitApproval` parks a running task on the call
   * `request` names, fenced: status `awaiting_approval` (neither claimable nor reaped), its attempt given back,
   * the call recorded with its deadline. Parking again is a no-op, and a pending call's deadline never moves.
   */
  awaitApproval: method({
    params: z.object({ taskId: TaskRefSchema, fence: FenceSchema, request: ApprovalRequestSchema }),
    result: z.void(),
    toParams: (taskId: string, fence: number, request: ApprovalRequest) => ({ taskId, fence, request }),
  }).toArgs((p) => [p.taskId, p.fence, p.request]),
  /** The gated call at `step` of the task, decided or not; null when none was asked for. */
  approvalOf: method({
    params: z.object({ taskId: TaskRefSchema, step: StepNumberSchema }),
    result: ApprovalSchema.nullable(),
    toParams: (taskId: string, step: number) => ({ taskId, step }),
  }).toArgs((p) => [p.taskId, p.step]),
  /**
   * Records an operator's decision on the task's pending call, once: in one transaction the call is decided
   * and the task put back to `queued`. Answers what happened (see DecideResultSchema); with `tenant`, only
   * that tenant's task.
   */
  decideApproval: method({
    params: z.object({ taskId: TaskRefSchema, decision: DecisionSchema, tenant: TenantSchema.optional() }),
    result: DecideResultSchema,
    toParams: (taskId: string, decision: Decision, tenant?: string) => ({ taskId, decision, ...(tenant !== undefined ? { tenant } : {}) }),
  }).toArgs((p) => (p.tenant === undefined ? [p.taskId, p.decision] : [p.taskId, p.decision, p.tenant])),
  /** The calls tasks in `awaiting_approval` wait on, oldest request first; with `tenant`, only that tenant's. */
  listApprovals: method({ ...tenantList, result: z.array(PendingApprovalSchema) }).toArgs(tenantListArgs),
  /**
   * Fails up to `limit` tasks whose pending call is past its deadline (`approval_timeout`, dead-lettered),
   * the call recorded as `timeout` and never made. Answers those tasks.
   */
  expireApprovals: method({
    params: z.object({ limit }),
    result: z.array(ExpiredApprovalSchema),
    toParams: (limit: number) => ({ limit }),
  }).toArgs((p) => [p.limit]),
  /**
   * The side-effect ledger (migration 004): the call under `idempotencyKey` starts now. Answers how often it
   * was started, this start included, and the outcome an earlier call recorded, if any; a recorded outcome
   * is final and the call is not made again.
   */
  toolCallStarted: method({
    params: z.object({ idempotencyKey: toolCallKey, taskId: TaskRefSchema, step: StepNumberSchema, tool: z.string().min(1) }),
    result: ToolCallEntrySchema,
    toParams: (idempotencyKey: string, taskId: string, step: number, tool: string) => ({ idempotencyKey, taskId, step, tool }),
  }).toArgs((p) => [p.idempotencyKey, p.taskId, p.step, p.tool]),
  /** The ledger's row for `idempotencyKey`, without starting anything; null when no call of it was started. */
  getToolCall: method({
    params: z.object({ idempotencyKey: toolCallKey }),
    result: ToolCallEntrySchema.nullable(),
    toParams: (idempotencyKey: string) => ({ idempotencyKey }),
  }).toArgs((p) => [p.idempotencyKey]),
  /** Records the call's outcome once: the first one recorded wins, and is what every caller gets back. */
  toolCallFinished: method({
    params: z.object({ idempotencyKey: toolCallKey, outcome: ToolOutcomeSchema }),
    result: ToolOutcomeSchema,
    toParams: (idempotencyKey: string, outcome: ToolOutcome) => ({ idempotencyKey, outcome }),
  }).toArgs((p) => [p.idempotencyKey, p.outcome]),
  /**
   * Gives back premarks (src/agent/premark.ts) whose calls were never dispatched: the attempt that wrote them
   * stopped, or ran out of wall time, between its model turn's checkpoint and the calls. Deletes each row still
   * as its premark wrote it (starts 1, outcome unknown), so the call's next dispatch is counted as its first
   * start, not as an unknown outcome. Answers how many rows went.
   */
  toolCallUnmark: method({
    params: z.object({ idempotencyKeys: z.array(toolCallKey).min(1).max(1000) }),
    result: z.number().int().nonnegative(),
    toParams: (idempotencyKeys: readonly string[]) => ({ idempotencyKeys: [...idempotencyKeys] }),
  }).toArgs((p) => [p.idempotencyKeys]),
  /**
   * API keys (migration 005). `createKey` stores a key by the hash of its secret; with `replaces`, the
   * replaced key (same tenant, still valid) expires after the overlap, in the same transaction, and an
   * unknown one is KeyNotFoundError with nothing created.
   */
  createKey: method({
    params: z.object({ key: NewApiKeySchema, replaces: KeyReplacementSchema.optional() }),
    result: ApiKeyInfoSchema,
    toParams: (key: NewApiKey, replaces?: KeyReplacement) => ({ key, ...(replaces !== undefined ? { replaces } : {}) }),
  }).toArgs((p) => (p.replaces === undefined ? [p.key] : [p.key, p.replaces])),
  /** The key with id `id`, with its secret's hash, for verification; null when there is none. */
  findKey: method({
    params: z.object({ id: KeyRefSchema }),
    result: ApiKeyRecordSchema.nullable(),
    toParams: (id: string) => ({ id }),
  }).toArgs((p) => [p.id]),
  /** Keys without their hashes, oldest first; with `tenant`, only that tenant's. */
  listKeys: method({
    params: z.object({ tenant: TenantSchema.optional() }),
    result: z.array(ApiKeyInfoSchema),
    toParams: (tenant?: string) => (tenant !== undefined ? { tenant } : {}),
  }).toArgs((p) => (p.tenant === undefined ? [] : [p.tenant])),
  /** Revokes at once (idempotent); with `tenant`, only that tenant's key. Null when there is no such key. */
  revokeKey: method({
    params: z.object({ id: KeyRefSchema, tenant: TenantSchema.optional() }),
    result: ApiKeyInfoSchema.nullable(),
    toParams: (id: string, tenant?: string) => ({ id, ...(tenant !== undefined ? { tenant } : {}) }),
  }).toArgs((p) => (p.tenant === undefined ? [p.id] : [p.id, p.tenant])),
  /**
   * Prompt versions (migration 008, src/store/agentVersions.ts). `putAgentVersion` stores a version once
   * (a stored one is left as it is) and answers whether it was new.
   */
  putAgentVersion: method({
    params: z.object({ version: NewAgentVersionSchema }),
    result: z.boolean(),
    toParams: (version: NewAgentVersion) => ({ version }),
  }).toArgs((p) => [p.version]),
  /** A version with its agent file text; null when the store does not hold it. */
  getAgentVersion: method({
    params: z.object({ agent: AgentNameSchema, version: PromptVersionSchema }),
    result: AgentVersionSchema.nullable(),
    toParams: (agent: string, version: string) => ({ agent, version }),
  }).toArgs((p) => [p.agent, p.version]),
  /** The agent's versions, oldest first, with the tasks pinned to each (every tenant's). */
  listAgentVersions: method({
    params: z.object({ agent: AgentNameSchema }),
    result: z.array(AgentVersionInfoSchema),
    toParams: (agent: string) => ({ agent }),
  }).toArgs((p) => [p.agent]),
  /** The agent's rollout row; null before any intake started with the agent. */
  getRollout: method({
    params: z.object({ agent: AgentNameSchema }),
    result: RolloutSchema.nullable(),
    toParams: (agent: string) => ({ agent }),
  }).toArgs((p) => [p.agent]),
  listRollouts: method({
    params: z.object({}),
    result: z.array(RolloutSchema),
    toParams: () => ({}),
  }).toArgs(() => []),
  /**
   * Start-up: stores the agent files' version and creates the agent's rollout row with it as stable. A
   * version other than the stored `file_version` is a deploy, and wins: it becomes stable, and a running
   * canary is aborted (`aborted_canary` names it).
   */
  syncFileVersion: method({
    params: z.object({ agent: AgentNameSchema, version: PromptVersionSchema, source: AgentSourceSchema }),
    result: FileSyncResultSchema,
    toParams: (agent: string, version: string, source: string) => ({ agent, version, source }),
  }).toArgs((p) => [p.agent, p.version, p.source]),
  /**
   * Stores the canary's version and starts it at `steps[0]` percent. CanaryRunningError (409) while one
   * runs; ValidationError (422) when the version is the stable one; AgentNotFoundError for an agent with no
   * rollout row.
   */
  startCanary: method({
    params: z.object({
      agent: AgentNameSchema,
      version: PromptVersionSchema,
      source: AgentSourceSchema,
      steps: CanaryStepsSchema,
      minTasksPerStep: MinTasksPerStepSchema,
      by: z.string().min(1).max(200),
    }),
    result: RolloutSchema,
    toParams: (agent: string, version: string, source: string, steps: readonly number[], minTasksPerStep: number, by: string) => ({
      agent,
      version,
      source,
      steps: [...steps],
      minTasksPerStep,
      by,
    }),
  }).toArgs((p) => [p.agent, p.version, p.source, p.steps, p.minTasksPerStep, p.by]),
  /** Aborts the running canary (weight 0, state `aborted`). CanaryNotRunningError (409) when none runs. */
  abortCanary: method({
    params: z.object({ agent: AgentNameSchema, by: z.string().min(1).max(200) }),
    result: RolloutSchema,
    toParams: (agent: string, by: string) => ({ agent, by }),
  }).toArgs((p) => [p.agent, p.by]),
  /**
   * A decision on the canary (the judge's; see RolloutChangeSchema), applied only while the row's revision
   * is still `expectedRevision`: a conditional UPDATE, so two judges, or a judge and an operator, never
   * both act on the same state. Answers whether it applied, and the row.
   */
  decideCanary: method({
    params: z.object({ agent: AgentNameSchema, expectedRevision: z.number().int().nonnegative(), change: RolloutChangeSchema }),
    result: DecisionResultSchema,
    toParams: (agent: string, expectedRevision: number, change: RolloutChange) => ({ agent, expectedRevision, change }),
  }).toArgs((p) => [p.agent, p.expectedRevision, p.change]),
  /**
   * The canary judge's figures (src/store/canaryStats.ts): per version, the agent's tasks created since
   * `since` that ended succeeded or failed, with count, sum and sum of squares of tool calls, duplicate tool
   * calls and cost per task; `finished_since_step` counts those created since `stepSince` (default `since`).
   */
  canaryStats: method({
    params: z.object({
      agent: AgentNameSchema,
      stableVersion: PromptVersionSchema,
      canaryVersion: PromptVersionSchema,
      since: TimestampSchema,
      stepSince: TimestampSchema.optional(),
    }),
    result: CanaryStatsSchema,
    toParams: (agent: string, stableVersion: string, canaryVersion: string, since: string, stepSince?: string) => ({
      agent,
      stableVersion,
      canaryVersion,
      since,
      ...(stepSince !== undefined ? { stepSince } : {}),
    }),
  }).toArgs((p) => (p.stepSince === undefined ? [p.agent, p.stableVersion, p.canaryVersion, p.since] : [p.agent, p.stableVersion, p.canaryVersion, p.since, p.stepSince])),
  /**
   * The webhook outbox (migration 014, src/store/webhooks.ts): claims up to `limit` due deliveries for
   * `owner`, each for `leaseMs`, earliest due first, skipping rows another loop holds. Each claim is one
   * attempt (numbered in the answer); a lapsed claim's unrecorded attempt is recorded as interrupted.
   */
  claimWebhooks: method({
    params: z.object({ owner: z.string().min(1).max(200), limit: z.number().int().positive().max(1000), leaseMs: z.number().int().positive().max(3_600_000) }),
    result: z.array(WebhookClaimSchema),
    toParams: (owner: string, limit: number, leaseMs: number) => ({ owner, limit, leaseMs }),
  }).toArgs((p) => [p.owner, p.limit, p.leaseMs]),
  /**
   * Records an attempt and, while `owner`'s claim (`attempt`) is still current, the state it leads to.
   * False when a later claim took the delivery over: the attempt is kept, the state is the new claimant's.
   */
  recordWebhookAttempt: method({
    params: z.object({ id: WebhookIdSchema, owner: z.string().min(1).max(200), attempt: z.number().int().positive(), result: WebhookAttemptResultSchema }),
    result: z.boolean(),
    toParams: (id: string, owner: string, attempt: number, result: WebhookAttemptResult) => ({ id, owner, attempt, result }),
  }).toArgs((p) => [p.id, p.owner, p.attempt, p.result]),
  /** A task's webhook with its delivery state and attempts; null without one. With `tenant`, only that tenant's task. */
  taskWebhook: method({ ...tenantTask, result: TaskWebhookViewSchema.nullable() }).toArgs(tenantTaskArgs),
};

type Table = typeof STORE_METHODS;
export type StoreMethodName = keyof Table;
export type StoreArgs<K extends StoreMethodName> = Parameters<Table[K]["toParams"]>;
export type StoreResult<K extends StoreMethodName> = z.output<Table[K]["result"]>;
type StoreParams<K extends StoreMethodName> = z.output<Table[K]["params"]>;

export type StoreMethod<K extends StoreMethodName> = (...args: StoreArgs<K>) => Promise<StoreResult<K>>;

/** The store's methods that cross the broker, each documented at its entry above. */
export type StoreMethods = { [K in keyof Table]: StoreMethod<K> };

/** One entry as seen through a generic method name. */
export interface StoreMethodEntry<K extends StoreMethodName> {
  params: z.ZodType<StoreParams<K>>;
  toParams: (...args: StoreArgs<K>) => Record<string, unknown>;
  toArgs: (p: StoreParams<K>) => StoreArgs<K>;
}

// The same table, typed per method so a generic `K` keeps each entry's arguments, params and answer together.
const ENTRIES: { [K in StoreMethodName]: StoreMethodEntry<K> } = STORE_METHODS;

export const STORE_METHOD_NAMES = Object.keys(STORE_METHODS) as StoreMethodName[];

export function storeMethod<K extends StoreMethodName>(name: K): StoreMethodEntry<K> {
  return ENTRIES[name];
}
