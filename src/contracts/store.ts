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
  UsageSchema,
  type NewTask,
  type TaskOutcome,
  type Usage,
} from "./task";
import { ToolCallEntrySchema, ToolOutcomeSchema, type ToolOutcome } from "./tools";
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

export const STORE_METHODS = {
  /** Commits the task (and the idempotency key, if any) atomically. */
  createTask: method({
    params: z.object({ task: NewTaskSchema, idempotencyKey: IdempotencyKeySchema.optional() }),
    result: CreateTaskResultSchema,
    toParams: (task: NewTask, idempotencyKey?: string) => ({ task, idempotencyKey }),
  }).toArgs((p) => [p.task, p.idempotencyKey]),
  /** With `tenant`, only that tenant's task: another tenant's is null, like an unknown one. */
  getTask: method({
    params: z.object({ id: TaskRefSchema, tenant: TenantSchema.optional() }),
    result: TaskRecordSchema.nullable(),
    toParams: (id: string, tenant?: string) => ({ id, ...(tenant !== undefined ? { tenant } : {}) }),
  }).toArgs((p) => (p.tenant === undefined ? [p.id] : [p.id, p.tenant])),
  /** With `tenant`, only that tenant's task's steps (none for another tenant's task). */
  listSteps: method({ ...tenantTask, result: z.array(StepRecordSchema) }).toArgs(tenantTaskArgs),
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
   */
  claimNext: method({
    params: z.object({ owner: z.string().min(1), caps: RunningCapsSchema }),
    result: ClaimResultSchema.nullable(),
    toParams: (owner: string, caps: RunningCaps) => ({ owner, caps }),
  }).toArgs((p) => [p.owner, p.caps]),
  /** The queued task of `tenant` a fair claim would take first; null when the tenant has none queued. */
  queuedHead: method({
    params: z.object({ tenant: TenantSchema }),
    result: TaskIdSchema.nullable(),
    toParams: (tenant: string) => ({ tenant }),
  }).toArgs((p) => [p.tenant]),
  /** Appends one checkpoint and adds its usage to the task. StaleFenceError if `fence` is not current. */
  appendStep: method({
    params: z.object({ taskId: TaskRefSchema, fence: FenceSchema, step: NewStepSchema, usageDelta: UsageSchema.optional() }),
    result: z.void(),
    toParams: (taskId: string, fence: number, step: NewStep, usageDelta?: Usage) => ({ taskId, fence, step, usageDelta }),
  }).toArgs((p) => [p.taskId, p.fence, p.step, p.usageDelta]),
  /** Terminal outcome. StaleFenceError if `fence` is not current. Failures also land in the dead-letter list. */
  finishTask: method({
    params: z.object({ taskId: TaskRefSchema, fence: FenceSchema, outcome: TaskOutcomeSchema }),
    result: z.void(),
    toParams: (taskId: string, fence: number, outcome: TaskOutcome) => ({ taskId, fence, outcome }),
  }).toArgs((p) => [p.taskId, p.fence, p.outcome]),
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
  /** With `tenant`, only that tenant's dead letters. */
  listDeadLetters: method({
    params: z.object({ limit: limit.default(100), tenant: TenantSchema.optional() }),
    result: z.array(DeadLetterSchema),
    toParams: (limit: number, tenant?: string) => ({ limit, ...(tenant !== undefined ? { tenant } : {}) }),
  }).toArgs((p) => (p.tenant === undefined ? [p.limit] : [p.limit, p.tenant])),
  /** Puts a failed task back to `queued` with fresh attempts and removes its dead letter; with `tenant`, only that tenant's. */
  redrive: method({ ...tenantTask, result: z.boolean() }).toArgs(tenantTaskArgs),
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
