/**
 * `TaskStore` over a `pg.Pool`: one SQL code path for Postgres and PGlite.
 *
 * Fencing: every worker write is one statement whose WHERE demands the current
 * `fence` and status `running`, so a paused zombie can never overwrite its
 * successor. When such a write matches no row, a follow-up read only decides
 * which error to raise. Writes are retry-safe: repeating a write that already
 * committed (the connection died before the answer) with the same fence and the
 * same content succeeds without doing anything twice.
 *
 * An id that is not a task id (`isTaskId`) names no task: Postgres would reject
 * the malformed uuid with an error, and for look-ups that simply means "none".
 */
import type pg from "pg";
import { PreparedStatements } from "./preparedStatements";
import { APPEND_STEPS_SQL, CHECKPOINT_UPDATED_AT, checkpointKey, stepKey, stepsOf, type CheckpointItem } from "./checkpointBatch";
import { DEFAULT_MAX_IN_FLIGHT, GroupCommit, type BatchFailedHook, type GroupCommitOptions, type ItemOutcome } from "./groupCommit";
import {
  CHECKPOINT_SCHEMA_VERSION,
  DEFAULT_TENANT,
  isTaskId,
  type ApiKeyInfo,
  type AgentVersion,
  type AgentVersionInfo,
  type DecisionResult,
  type FileSyncResult,
  type NewAgentVersion,
  type Rollout,
  type RolloutChange,
  type CancelResult,
  type Approval,
  type ApprovalRequest,
  type DecideResult,
  type Decision,
  type ExpiredApproval,
  type PendingApproval,
  type ApiKeyRecord,
  type KeyReplacement,
  type NewApiKey,
  TASK_STATUSES,
  type ClaimResult,
  type ClaimExclusions,
  type NewSwitchChange,
  type ScopeStatus,
  type Switch,
  type SwitchChange,
  type SwitchKind,
  type TaskScope,
  type RunningCaps,
  type CreateTaskResult,
  type CreateTaskItem,
  type CreateTaskOutcome,
  type DeadLetter,
  type NewStep,
  type LastCheckpoint,
  type NewTask,
  type RunningTask,
  type StepRecord,
  type TaskCounts,
  type OpenWork,
  type TaskList,
  type TaskListQuery,
  type TaskOutcome,
  type TaskRecord,
  type ToolCallEntry,
  type ToolCallMark,
  type ToolOutcome,
  type Usage,
  type CanaryStats,
  type TaskWebhookView,
  type WebhookAttemptResult,
  type WebhookClaim,
} from "../contracts";
import { ClawfleetError, InternalError, messageOf, StaleFenceError, TaskNotFoundError, ValidationError } from "../errors";
import { createApiKey, findApiKey, listApiKeys, revokeApiKey, type ApiKeyRow } from "./apiKeys";
import * as versions from "./agentVersions";
import { canaryStats } from "./canaryStats";
import { addUsage, cancelTask } from "./cancel";
import * as approvals from "./approvals";
import { listTaskPage } from "./taskList";
import * as switches from "./switches";
import * as webhooks from "./webhooks";
import { isConnectionLost, sqlStateOf, toStoreError } from "./dbErrors";
import { anyCap, capParams, CLAIM_NEXT_SQL, FAIR_CLAIM_LOCK_SQL, QUEUED_HEAD_SQL } from "./fairClaim";
import { migrate } from "./migrate";
import { createPool, type PoolOptions, type StoreKind } from "./pool";
import { toDeadLetter, toStep, toTask, iso, num, type DeadLetterRow, type StepRow, type TaskRow } from "./rows";
import type { TaskStore } from "./types";

/**
 * The same step number written twice with different content under the current
 * fence. The agent loop never does this, so it is a bug, not a race: not
 * retryable, and `data.reason` is "duplicate_step" on the wire.
 */
export class DuplicateStepError extends InternalError {}


/**
 * A NUL or a lone surrogate, as `JSON.stringify` escapes them (an even run of backslashes before, so a
 * literal backslash followed by "u0000" is not one): jsonb cannot hold either.
 */
const UNSTORABLE_ESCAPE = /(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/gi;

/**
 * jsonb parameters: `pg` would send a JS array as a Postgres array and a string unquoted. What a model or a
 * tool answered may hold a NUL or a lone surrogate, which jsonb refuses: each is stored as U+FFFD, so the
 * step is kept (a task's own input never gets here with one: the API refuses it with a 422). A value JSON
 * cannot write at all (nested past the stack, a BigInt) is a `ValidationError`, not a crash of the writer.
 */
function json(v: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(v === undefined ? null : v);
  } catch (err) {
    throw new ValidationError(`the value cannot be stored as JSON: ${messageOf(err)}`);
  }
  return text.includes("\\u") ? text.replace(UNSTORABLE_ESCAPE, "$1\\ufffd") : text;
}

const limitOf = (n: number): number => (Number.isFinite(n) ? Math.max(0, Math.floor(n)) : 0);

/** A new task's row values, in the column order of `SQL.insertTask` and `insertTasksSql`. */
function insertValues(task: NewTask): unknown[] {
  return [task.id, task.agent, json(task.input), task.priority, json(task.metadata), task.prompt_version, task.trace_context ?? null, task.tenant ?? DEFAULT_TENANT, task.webhook ? json(task.webhook) : null, task.budgets ? json(task.budgets) : null];
}

/** `SQL.insertTask` for `n` rows at once. */
function insertTasksSql(n: number): string {
  const rows = Array.from({ length: n }, (_, r) => {
    const p = (c: number) => `$${r * 10 + c}`;
    return `(${p(1)}, ${p(2)}, ${p(3)}::jsonb, ${p(4)}, ${p(5)}::jsonb, ${p(6)}, ${p(7)}, ${p(8)}, ${p(9)}::jsonb, ${p(10)}::jsonb)`;
  });
  return `INSERT INTO tasks (id, agent, input, priority, metadata, prompt_version, trace_context, tenant, webhook, budgets) VALUES ${rows.join(", ")} RETURNING *`;
}

/** `SQL.finish`'s parameters ($1 to $6; `SQL.finishWithStep` starts with the same). */
function finishValues(taskId: string, fence: number, outcome: TaskOutcome): unknown[] {
  const error = outcome.status === "failed" ? (outcome.error ?? { type: "internal_error", message: "task failed without an error" }) : (outcome.error ?? null);
  return [taskId, fence, outcome.status, json(outcome.result ?? null), json(error), outcome.budget_exhausted ?? null];
}

/** A checkpoint's columns after the task's id and fence, in the order both checkpoint statements take them ($3–$11 of `appendStep`). */
function checkpointValues(step: NewStep, data: string, u: Usage | undefined): unknown[] {
  return [
    step.step,
    step.kind,
    CHECKPOINT_SCHEMA_VERSION,
    data,
    u?.input_tokens ?? 0,
    u?.output_tokens ?? 0,
    u?.cache_read_input_tokens ?? 0,
    u?.cache_creation_input_tokens ?? 0,
    u?.cost_usd ?? 0,
  ];
}

/** An item's error in a `createTasks` answer: the wire form of what `createTask` threw. */
function outcomeError(err: unknown): { type: string; message: string; data?: Record<string, unknown> } {
  // What createTask throws went through toStoreError already: a Clawfleet error, whose class the caller restores.
  if (!(err instanceof ClawfleetError)) return { type: "internal_error", message: "internal error", data: { operation: "createTask" } };
  const data = err.data as Record<string, unknown> | undefined;
  return { type: err.errorType, message: err.message, ...(data ? { data } : {}) };
}

/**
 * A checkpoint's two halves, shared by both forms of `appendStep`: the task's row (its step count and usage,
 * behind the fence) and the step's own row, inserted only when the fenced update found the task.
 */
const CHECKPOINT_TASK_UPDATE = `
      UPDATE tasks
      SET steps = GREATEST(steps, $3),
          input_tokens = input_tokens + $7::bigint,
          output_tokens = output_tokens + $8::bigint,
          cache_read_input_tokens = cache_read_input_tokens + $9::bigint,
          cache_creation_input_tokens = cache_creation_input_tokens + $10::bigint,
          cost_usd = cost_usd + $11::numeric,
          updated_at = ${CHECKPOINT_UPDATED_AT}
      WHERE id = $1 AND fence = $2 AND status = 'running'
      RETURNING id`;
const CHECKPOINT_INSERT = `
    INSERT INTO steps (task_id, step, kind, schema_version, fence, data)
    SELECT id, $3, $4, $5, $2, $6::jsonb FROM task
    RETURNING step`;

const SQL = {
  insertTask: `
    INSERT INTO tasks (id, agent, input, priority, metadata, prompt_version, trace_context, tenant, webhook, budgets)
    VALUES ($1, $2, $3::jsonb, $4, $5::jsonb, $6, $7, $8, $9::jsonb, $10::jsonb)
    RETURNING *`,
  // Takes the key, or replaces one older than the 24 h window; a fresh key held by another task returns no row.
  // Keys are per tenant (migration 005): another tenant's same key is a different key.
  claimKey: `
    INSERT INTO idempotency_keys (key, task_id, tenant) VALUES ($1, $2, $3)
    ON CONFLICT (tenant, key) DO UPDATE SET task_id = EXCLUDED.task_id, created_at = now()
      WHERE idempotency_keys.created_at < now() - interval '24 hours'
    RETURNING task_id`,
  taskByKey: `SELECT t.* FROM idempotency_keys k JOIN tasks t ON t.id = k.task_id WHERE k.key = $1 AND k.tenant = $2`,
  liveTaskByKey: `
    SELECT t.* FROM idempotency_keys k JOIN tasks t ON t.id = k.task_id
    WHERE k.key = $1 AND k.tenant = $2 AND k.created_at >= now() - interval '24 hours'`,
  // A null tenant ($2) reads any task: the roles inside the cluster; the API always names one.
  getTask: `SELECT * FROM tasks WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)`,
  listSteps: `
    SELECT task_id, step, kind, schema_version, fence, data, created_at
    FROM steps s WHERE task_id = $1
      AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = s.task_id AND t.tenant = $2))
    ORDER BY step`,
  listStepsAfter: `
    SELECT task_id, step, kind, schema_version, fence, data, created_at
    FROM steps s WHERE task_id = $1 AND step > $2
      AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = s.task_id AND t.tenant = $4))
    ORDER BY step LIMIT $3`,
  claim: `
    UPDATE tasks
    SET fence = fence + 1, attempts = attempts + 1, status = 'running', lease_owner = $2,
        started_at = COALESCE(started_at, now()), updated_at = now()
    WHERE id = $1 AND status IN ('queued', 'running')
    RETURNING *`,
  appendStep: `WITH task AS (${CHECKPOINT_TASK_UPDATE}) ${CHECKPOINT_INSERT}`,
  // `appendStep` with ledger marks; the plain one above serves every checkpoint that has none.
  appendStepMarked: `
    WITH task AS (${CHECKPOINT_TASK_UPDATE}), marked AS (
      -- Ledger rows (migration 004) of the side-effect calls this checkpoint asks for, behind the same fence:
      -- starts 1, outcome unknown, as toolCallStarted writes them, so the executor counts the row as the
      -- call's first start. A crash before the call counts one unknown outcome that was not one. A row that
      -- exists already is left alone: a retried checkpoint, or a call started since.
      INSERT INTO tool_calls (idempotency_key, task_id, step, tool)
      SELECT m.key, task.id::text, m.step, m.tool FROM task, jsonb_to_recordset($12::jsonb) AS m(key text, step integer, tool text)
      ON CONFLICT (idempotency_key) DO NOTHING
    )
    ${CHECKPOINT_INSERT}`,
  sameStep: `SELECT fence, kind, data = $3::jsonb AS same_data FROM steps WHERE task_id = $1 AND step = $2`,
  finish: `
    WITH task AS (
      UPDATE tasks
      SET status = $3, result = $4::jsonb, error = $5::jsonb, finished_at = now(), updated_at = now(), lease_owner = NULL,
          budget_exhausted = $6
      WHERE id = $1 AND fence = $2 AND status = 'running'
      RETURNING id, agent, status, error, attempts, tenant
    ), letter AS (
      INSERT INTO dead_letters (task_id, agent, error, attempts, tenant)
      SELECT id, agent, error, attempts, tenant FROM task WHERE status = 'failed'
      ON CONFLICT (task_id) DO UPDATE
        SET agent = EXCLUDED.agent, error = EXCLUDED.error, attempts = EXCLUDED.attempts, tenant = EXCLUDED.tenant, created_at = now()
    )
    SELECT count(*)::int AS n FROM task`,
  // `finish` and a checkpoint (as `appendStep` writes one) in one statement: both are written or neither.
  // A step already stored aborts the whole statement (23505), the task's update with it.
  finishWithStep: `
    WITH task AS (
      UPDATE tasks
      SET status = $3, result = $4::jsonb, error = $5::jsonb, finished_at = now(), updated_at = now(), lease_owner = NULL,
          budget_exhausted = $6,
          steps = GREATEST(steps, $7),
          input_tokens = input_tokens + $11::bigint,
          output_tokens = output_tokens + $12::bigint,
          cache_read_input_tokens = cache_read_input_tokens + $13::bigint,
          cache_creation_input_tokens = cache_creation_input_tokens + $14::bigint,
          cost_usd = cost_usd + $15::numeric
      WHERE id = $1 AND fence = $2 AND status = 'running'
      RETURNING id, agent, status, error, attempts, tenant
    ), step AS (
      INSERT INTO steps (task_id, step, kind, schema_version, fence, data)
      SELECT id, $7, $8, $9, $2, $10::jsonb FROM task
      RETURNING step
    ), letter AS (
      INSERT INTO dead_letters (task_id, agent, error, attempts, tenant)
      SELECT id, agent, error, attempts, tenant FROM task WHERE status = 'failed'
      ON CONFLICT (task_id) DO UPDATE
        SET agent = EXCLUDED.agent, error = EXCLUDED.error, attempts = EXCLUDED.attempts, tenant = EXCLUDED.tenant, created_at = now()
    )
    SELECT count(*)::int AS n FROM step`,
  release: `
    UPDATE tasks SET status = 'queued', lease_owner = NULL, wakeup_at = now(), updated_at = now(),
      attempts = CASE WHEN $3::boolean THEN attempts ELSE GREATEST(attempts - 1, 0) END,
      not_before = CASE WHEN $4::double precision > 0 THEN now() + $4::double precision * interval '1 millisecond' END
    WHERE id = $1 AND fence = $2 AND status = 'running'`,
  fenceOf: `SELECT fence, status FROM tasks WHERE id = $1`,
  touch: `UPDATE tasks SET wakeup_at = now() WHERE id = ANY($1::uuid[])`,
  staleQueued: `
    SELECT id FROM tasks
    WHERE status = 'queued' AND wakeup_at < now() - $1::double precision * interval '1 millisecond'
    ORDER BY wakeup_at, id LIMIT $2`,
  running: `SELECT id, fence, updated_at FROM tasks WHERE status = 'running' ORDER BY updated_at LIMIT $1`,
  countByStatus: `SELECT status, count(*)::int AS n FROM tasks GROUP BY status`,
  // A range of migration 001's (status, wakeup_at) index per open status: the finished tasks are never read.
  countOpenWork: `
    SELECT
      (SELECT count(*)::int FROM tasks WHERE status = 'queued') AS queued,
      (SELECT count(*)::int FROM tasks WHERE status = 'running') AS running,
      (SELECT count(*)::int FROM tasks WHERE status = 'awaiting_approval') AS awaiting_approval,
      (SELECT count(*)::int FROM dead_letters) AS dead_letters`,
  // Migration 009's index: a range scan over the agent's tasks of the day, cost_usd read from the index.
  agentCostSince: `SELECT COALESCE(sum(cost_usd), 0) AS cost FROM tasks WHERE agent = $1 AND created_at >= $2::timestamptz`,
  purgeKeys: `
    DELETE FROM idempotency_keys WHERE ctid IN (
      SELECT ctid FROM idempotency_keys WHERE created_at < now() - interval '24 hours' ORDER BY created_at LIMIT $1
    )`,
  deadLetters: `
    SELECT task_id, agent, error, attempts, created_at, tenant FROM dead_letters
    WHERE ($2::text IS NULL OR tenant = $2)
    ORDER BY created_at DESC, task_id LIMIT $1`,
  redrive: `
    WITH task AS (
      UPDATE tasks
      SET status = 'queued', attempts = 0, error = NULL, result = NULL, finished_at = NULL, budget_exhausted = NULL,
          lease_owner = NULL, wakeup_at = now(), updated_at = now()
      WHERE id = $1 AND status = 'failed' AND ($2::text IS NULL OR tenant = $2)
      RETURNING id
    ), letter AS (
      DELETE FROM dead_letters WHERE task_id IN (SELECT id FROM task)
    )
    SELECT count(*)::int AS n FROM task`,
  // A start counts only while the outcome is unknown: a recorded outcome answers, and nothing is called.
  toolCallStarted: `
    INSERT INTO tool_calls (idempotency_key, task_id, step, tool) VALUES ($1, $2, $3, $4)
    ON CONFLICT (idempotency_key) DO UPDATE
      SET starts = tool_calls.starts + 1, last_started_at = now()
      WHERE tool_calls.outcome IS NULL
    RETURNING starts, outcome`,
  toolCall: `SELECT starts, outcome FROM tool_calls WHERE idempotency_key = $1`,
  // The first outcome recorded wins; a later one (a zombie's, a retry's) reads the first back, in a statement
  // of its own: one that waited on the winner's row lock still has a snapshot from before its commit.
  toolCallFinished: `
    UPDATE tool_calls SET outcome = $2::jsonb, finished_at = now()
    WHERE idempotency_key = $1 AND outcome IS NULL
    RETURNING outcome`,
  // Only a row as a premark wrote it: a started one (starts > 1) or a finished one is a call that went out.
  toolCallUnmark: `DELETE FROM tool_calls WHERE idempotency_key = ANY($1::text[]) AND starts = 1 AND outcome IS NULL`,
} as const;

export interface PgTaskStoreOptions {
  /** The database's redacted address, named in `UnavailableError` messages. @default "database" */
  target?: string;
  /** Called once by `close()`; pass the pool's owner when the store should end it. @default nothing */
  onClose?: () => Promise<void>;
  /** The connections new tasks are written on (`PoolHandle.submitPool`). @default the store's pool */
  submitPool?: pg.Pool;
  /**
   * Named statements, parsed and planned once per connection (src/store/preparedStatements.ts): `openStore`
   * turns them on, for Postgres and PGlite alike (PGlite parses and plans in the node's own thread, so it
   * gains the most). Off for a connection pooler that cannot keep them (`CLAWFLEET_PG_PREPARED_STATEMENTS=0`).
   * A new PGlite client starts with `DISCARD ALL` (src/store/pool.ts), which drops the session's statements
   * with the client that named them. @default false
   */
  preparedStatements?: boolean;
  /**
   * Plain checkpoints of concurrent tasks committed together, one statement per batch
   * (src/store/checkpointBatch.ts); `true` for the defaults of src/store/groupCommit.ts. `openStore` turns it
   * on, for Postgres and PGlite alike (`CLAWFLEET_PG_GROUP_COMMIT=0` turns it off). @default off: each checkpoint alone
   */
  groupCommit?: boolean | GroupCommitOptions;
  /** Told of a batch of checkpoints that failed as a whole, to log it; not of one a step already stored refused. */
  onBatchFailed?: BatchFailedHook;
}

export class PgTaskStore implements TaskStore {
  private readonly target: string;
  private readonly onClose: (() => Promise<void>) | undefined;
  private readonly submitPool: pg.Pool;
  private readonly statements: PreparedStatements | undefined;
  private readonly checkpoints: GroupCommit<CheckpointItem, undefined> | undefined;
  private readonly batchFailed: BatchFailedHook;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    opts: PgTaskStoreOptions = {},
  ) {
    this.target = opts.target ?? "database";
    this.onClose = opts.onClose;
    this.submitPool = opts.submitPool ?? pool;
    this.statements = opts.preparedStatements ? new PreparedStatements() : undefined;
    const group = opts.groupCommit;
    // A step already stored (a retried checkpoint in the batch) is no failure worth telling.
    this.batchFailed = (err, items) => {
      if (sqlStateOf(err) !== "23505") opts.onBatchFailed?.(err, items);
    };
    this.checkpoints = group
      ? new GroupCommit<CheckpointItem, undefined>(
          {
            operation: "appendStep",
            one: (c) => this.appendItem(c),
            many: (items) => this.appendMany(items),
            // JSON text's length: its UTF-16 units, against the batch's cap.
            sizeOf: (c) => stepsOf(c).reduce((n, s) => n + s.data.length, 0),
            // A task's checkpoint waits for its task's on the wire (parallel tool calls'): that one holds the row.
            keyOf: (c) => c.taskId.toLowerCase(),
            onBatchFailed: this.batchFailed,
          },
          group === true ? {} : group,
        )
      : undefined;
  }

  async migrate(): Promise<void> {
    await migrate(this.pool, { target: this.target });
  }

  async taskByIdempotencyKey(key: string, tenant: string): Promise<TaskRecord | null> {
    // A submit's read: on the connections kept for submits, as its create.
    const row = (await this.query<TaskRow>("taskByIdempotencyKey", SQL.liveTaskByKey, [key, tenant], { pool: this.submitPool })).rows[0];
    return row === undefined ? null : toTask(row);
  }

  async createTask(task: NewTask, idempotencyKey?: string): Promise<CreateTaskResult> {
    const tenant = task.tenant ?? DEFAULT_TENANT;
    const values = insertValues(task);
    if (idempotencyKey === undefined) {
      const { rows } = await this.query<TaskRow>("createTask", SQL.insertTask, values, { pool: this.submitPool });
      return { task: toTask(one(rows, "createTask")), created: true };
    }
    // The key is claimed first: a concurrent claimant of the same key waits on the
    // row until this transaction ends, then finds it taken and reads the winner.
    for (let attempt = 0; attempt < 3; attempt++) {
      const outcome = await this.transaction(
        "createTask",
        async (client) => {
          const claimed = await client.query(SQL.claimKey, [idempotencyKey, task.id, tenant]);
          if (claimed.rowCount === 1) {
            const { rows } = await client.query<TaskRow>(SQL.insertTask, values);
            return { task: toTask(one(rows, "createTask")), created: true };
          }
          const { rows } = await client.query<TaskRow>(SQL.taskByKey, [idempotencyKey, tenant]);
          const winner = rows[0];
          return winner === undefined ? undefined : { task: toTask(winner), created: false };
        },
        this.submitPool,
      );
      // Undefined only if the winning key vanished between our two statements (purged): claim again.
      if (outcome !== undefined) return outcome;
    }
    throw new InternalError("idempotency key kept changing hands", { operation: "createTask" });
  }

  /**
   * Group commit: the items without an idempotency key in one multi-row INSERT (one statement, one
   * commit); should it fail on an item's data, each of them goes alone, so that only the bad one gets the error. Items with
   * a key go through `createTask`, whose claim settles a race for the key with other callers; within the
   * batch, the first item of a key takes it and the later ones answer its task.
   */
  async createTasks(items: readonly CreateTaskItem[]): Promise<CreateTaskOutcome[]> {
    const outcomes: CreateTaskOutcome[] = new Array<CreateTaskOutcome>(items.length);
    const alone = async (i: number): Promise<void> => {
      const item = items[i] as CreateTaskItem;
      try {
        outcomes[i] = { ok: true, result: await this.createTask(item.task, item.idempotencyKey) };
      } catch (err) {
        outcomes[i] = { ok: false, error: outcomeError(err) };
      }
    };
    const keyless = items.flatMap((item, i) => (item.idempotencyKey === undefined ? [i] : []));
    const together = async (): Promise<void> => {
      if (keyless.length < 2) return void (await Promise.all(keyless.map(alone)));
      let rows: TaskRow[];
      try {
        rows = (await this.query<TaskRow>("createTasks", insertTasksSql(keyless.length), keyless.flatMap((i) => insertValues((items[i] as CreateTaskItem).task)), { raw: true, pool: this.submitPool, named: false })).rows;
      } catch (err) {
        // Nothing of the statement is stored. A constraint or data error (SQLSTATE classes 23, 22), or a value
        // no JSON holds (found before the statement was sent), is some item's own: each goes alone, so only the
        // bad one gets it. Any other (the connection lost, the database down) is every item's: answered to
        // all, not tried again once per item.
        const cls = sqlStateOf(err)?.slice(0, 2);
        if (cls === "22" || cls === "23" || err instanceof ValidationError) return void (await Promise.all(keyless.map(alone)));
        const error = outcomeError(toStoreError(err, "createTasks", this.target));
        for (const i of keyless) outcomes[i] = { ok: false, error };
        return;
      }
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const i of keyless) {
        const row = byId.get((items[i] as CreateTaskItem).task.id);
        outcomes[i] = row ? { ok: true, result: { task: toTask(row), created: true } } : { ok: false, error: outcomeError(new InternalError("a batched insert returned no row", { operation: "createTasks" })) };
      }
    };
    // One key's items one after the other, in their order (the first one takes the key); other keys at once.
    const byKey = new Map<string, number[]>();
    items.forEach((item, i) => {
      if (item.idempotencyKey === undefined) return;
      const k = JSON.stringify([item.task.tenant ?? DEFAULT_TENANT, item.idempotencyKey]);
      byKey.set(k, [...(byKey.get(k) ?? []), i]);
    });
    const inTurn = async (indices: number[]): Promise<void> => {
      for (const i of indices) await alone(i);
    };
    await Promise.all([together(), ...[...byKey.values()].map(inTurn)]);
    return outcomes;
  }

  async getTask(id: string, tenant?: string): Promise<TaskRecord | null> {
    if (!isTaskId(id)) return null;
    const { rows } = await this.query<TaskRow>("getTask", SQL.getTask, [id, tenant ?? null]);
    const row = rows[0];
    return row === undefined ? null : toTask(row);
  }

  async listSteps(taskId: string, tenant?: string): Promise<StepRecord[]> {
    if (!isTaskId(taskId)) return [];
    const { rows } = await this.query<StepRow>("listSteps", SQL.listSteps, [taskId, tenant ?? null]);
    return rows.map(toStep);
  }

  async listStepsAfter(taskId: string, afterStep: number, limit: number, tenant?: string): Promise<StepRecord[]> {
    if (!isTaskId(taskId)) return [];
    const { rows } = await this.query<StepRow>("listStepsAfter", SQL.listStepsAfter, [taskId, afterStep, limit, tenant ?? null]);
    return rows.map(toStep);
  }

  async claimTask(id: string, owner: string): Promise<ClaimResult | null> {
    if (!isTaskId(id)) return null;
    const { rows } = await this.query<TaskRow>("claimTask", SQL.claim, [id, owner]);
    const row = rows[0];
    if (row === undefined) return null;
    const task = toTask(row);
    return { task, fence: task.fence };
  }

  /** See the store's method table and fairClaim.ts. */
  async claimNext(owner: string, caps: RunningCaps, exclude?: ClaimExclusions): Promise<ClaimResult | null> {
    const values = [owner, ...capParams(caps, exclude)];
    const rows = anyCap(caps)
      ? await this.transaction("claimNext", async (client) => {
          await client.query(FAIR_CLAIM_LOCK_SQL);
          return (await client.query<TaskRow>(CLAIM_NEXT_SQL, values)).rows;
        })
      : (await this.query<TaskRow>("claimNext", CLAIM_NEXT_SQL, values)).rows;
    const row = rows[0];
    if (row === undefined) return null;
    const task = toTask(row);
    return { task, fence: task.fence };
  }

  async queuedHead(tenant: string): Promise<string | null> {
    const { rows } = await this.query<{ id: string }>("queuedHead", QUEUED_HEAD_SQL, [tenant]);
    return rows[0]?.id ?? null;
  }

  /** Kill switches: see the store's method table and switches.ts. */
  setSwitch(change: NewSwitchChange): Promise<Switch> {
    return switches.setSwitch(this.switchQuery("setSwitch"), change);
  }

  listSwitches(): Promise<Switch[]> {
    return switches.listSwitches(this.switchQuery("listSwitches"));
  }

  listSwitchChanges(limit: number, scope?: { kind?: SwitchKind; name?: string }): Promise<SwitchChange[]> {
    return switches.listSwitchChanges(this.switchQuery("listSwitchChanges"), limitOf(limit), scope);
  }

  tasksOfScope(scope: TaskScope, status: ScopeStatus, limit: number): Promise<string[]> {
    return switches.tasksOfScope(this.switchQuery("tasksOfScope"), scope, status, limitOf(limit));
  }

  private switchQuery(op: string) {
    return <R extends pg.QueryResultRow>(text: string, values: unknown[]) => this.query<R>(op, text, values);
  }

  /**
   * Fenced like every worker write. The same step again with the same fence and
   * content is a retry of a committed write and succeeds without adding usage
   * twice; different content is a `DuplicateStepError`.
   */
  async appendStep(taskId: string, fence: number, step: NewStep, usageDelta?: Usage, marks?: readonly ToolCallMark[]): Promise<{ marked: true } | undefined> {
    const data = json(step.data);
    // A checkpoint with ledger marks writes them in its own statement, and an id that is no task id is answered
    // by its own; the plain ones may share a commit.
    if (this.checkpoints && (marks === undefined || marks.length === 0) && isTaskId(taskId)) return this.checkpoints.submit({ taskId, fence, step, data, usage: usageDelta });
    return this.appendOne(taskId, fence, step, data, usageDelta, marks);
  }

  /**
   * Checkpoints of one task in one statement (the batch's), with the others that wait in the group commit if
   * there is one. What the statement does not store (a stale fence, the task's row held by another transaction,
   * a step already stored: a retry) is written step by step, in order, each answered as a lone `appendStep`: the
   * first ones may then be stored when a later one fails.
   */
  async appendSteps(taskId: string, fence: number, steps: readonly LastCheckpoint[]): Promise<void> {
    const [first, ...rest] = steps.map((s) => ({ step: s.step, data: json(s.step.data), usage: s.usageDelta }));
    if (first === undefined) return;
    const item: CheckpointItem = { taskId, fence, ...first, rest };
    if (this.checkpoints && isTaskId(taskId)) return this.checkpoints.submit(item);
    return this.appendItem(item);
  }

  /** An item alone: a task's several steps in one statement first, then one by one if it did not store them. */
  private async appendItem(c: CheckpointItem): Promise<undefined> {
    if (c.rest !== undefined && c.rest.length > 0 && isTaskId(c.taskId)) {
      const [outcome] = await this.appendMany([c]).catch(() => [{ alone: true } as const]);
      if (outcome !== undefined && !("alone" in outcome)) {
        if (outcome.ok) return undefined;
        throw outcome.error;
      }
    }
    for (const s of stepsOf(c)) await this.appendOne(c.taskId, c.fence, s.step, s.data, s.usage);
    return undefined;
  }

  /**
   * Plain checkpoints in one statement (src/store/checkpointBatch.ts). Those it did not store, and an item with a
   * step of a task already in the batch (a retry), go alone, each answered as a lone write is. An
   * error the database answered (nothing written) sends every one alone; a connection lost under the statement
   * (committed or not, unknown) answers every one with the error a lone write gets for it.
   */
  private async appendMany(items: readonly CheckpointItem[]): Promise<Array<ItemOutcome<undefined>>> {
    const seen = new Set<string>();
    const batched = items.map((c) => {
      const keys = stepsOf(c).map((s) => stepKey(c.taskId, s.step.step));
      if (keys.some((k) => seen.has(k)) || new Set(keys).size < keys.length) return false;
      for (const k of keys) seen.add(k);
      return true;
    });
    // One array per column, in the one-row statement's order.
    const rows = items.filter((_, i) => batched[i]).flatMap((c) => stepsOf(c).map((s) => [c.taskId, c.fence, ...checkpointValues(s.step, s.data, s.usage)]));
    const columns = (rows[0] ?? []).map((_, j) => rows.map((r) => r[j]));
    let stored: Set<string>;
    try {
      const { rows: answered } = await this.query<{ task_id: string; step: number; fence: string }>("appendStep", APPEND_STEPS_SQL, columns, { raw: true });
      stored = new Set(answered.map((r) => checkpointKey(r.task_id, r.step, num(r.fence))));
    } catch (err) {
      if (!isConnectionLost(err)) throw err;
      this.batchFailed(err, items.length);
      return items.map(() => ({ ok: false, error: toStoreError(err, "appendStep", this.target) }));
    }
    return items.map((c, i) =>
      batched[i] && stepsOf(c).every((s) => stored.has(checkpointKey(c.taskId, s.step.step, c.fence))) ? { ok: true, result: undefined } : { alone: true },
    );
  }

  /** One checkpoint in its own statement, with its ledger marks if any. */
  private async appendOne(taskId: string, fence: number, step: NewStep, data: string, usageDelta?: Usage, marks?: readonly ToolCallMark[]): Promise<{ marked: true } | undefined> {
    const marked = marks !== undefined && marks.length > 0 ? ({ marked: true } as const) : undefined;
    const values: unknown[] = [taskId, fence, ...checkpointValues(step, data, usageDelta)];
    if (marked) values.push(JSON.stringify((marks ?? []).map((m) => ({ key: m.idempotencyKey, step: m.step, tool: m.tool }))));
    try {
      const { rowCount } = await this.query("appendStep", marked ? SQL.appendStepMarked : SQL.appendStep, values, { raw: true });
      if (rowCount === 1) return marked;
    } catch (err) {
      if (sqlStateOf(err) !== "23505") throw toStoreError(err, "appendStep", this.target);
      // A retry of this very checkpoint passes: its first commit wrote its marks with it.
      await this.storedStepOrThrow("appendStep", taskId, fence, step, data);
      return marked;
    }
    await this.rejectFencedWrite("appendStep", taskId, fence, () => false);
    return undefined;
  }

  /** Fenced. Repeating the same outcome with the same fence is a no-op (a retried commit). */
  async finishTask(taskId: string, fence: number, outcome: TaskOutcome): Promise<void> {
    const { rows } = await this.query<{ n: number }>("finishTask", SQL.finish, finishValues(taskId, fence, outcome));
    if (rows[0]?.n === 1) return;
    await this.rejectFencedWrite("finishTask", taskId, fence, (status) => status === outcome.status);
  }

  /**
   * `finishTask` with its last checkpoint, in the same statement: a stale fence refuses both, and a retry of
   * the same write (same outcome, same step content) is a no-op too.
   */
  async finishWithStep(taskId: string, fence: number, outcome: TaskOutcome, last: LastCheckpoint): Promise<void> {
    const { step } = last;
    const data = json(step.data);
    const values = [...finishValues(taskId, fence, outcome), ...checkpointValues(step, data, last.usageDelta)];
    try {
      const { rows } = await this.query<{ n: number }>("finishWithStep", SQL.finishWithStep, values, { raw: true });
      if (rows[0]?.n === 1) return;
    } catch (err) {
      if (sqlStateOf(err) !== "23505") throw toStoreError(err, "finishWithStep", this.target);
      // The step was stored before and the statement wrote nothing: the same checkpoint under this fence (a
      // retried appendStep of it) leaves only the outcome to write; other content is a bug.
      await this.storedStepOrThrow("finishWithStep", taskId, fence, step, data);
      return this.finishTask(taskId, fence, outcome);
    }
    // Nothing matched: a stale fence, or this very write committed already (the task ended so, its step stored).
    await this.rejectFencedWrite("finishWithStep", taskId, fence, (status) => status === outcome.status);
    await this.storedStepOrThrow("finishWithStep", taskId, fence, step, data);
  }

  /** Passes when `step` is stored under `fence` with this content (`data`, as stored); else a `DuplicateStepError`. */
  private async storedStepOrThrow(op: string, taskId: string, fence: number, step: NewStep, data: string): Promise<void> {
    const { rows } = await this.query<{ fence: string; kind: string; same_data: boolean }>(op, SQL.sameStep, [taskId, step.step, data]);
    const existing = rows[0];
    if (existing && num(existing.fence) === fence && existing.kind === step.kind && existing.same_data) return;
    const what = existing ? "is already checkpointed with different content" : "is missing from the task this fence already ended";
    throw new DuplicateStepError(`step ${step.step} of task ${taskId} ${what}`, { reason: "duplicate_step", taskId, step: step.step, fence });
  }

  /** Fenced. Releasing twice with the same fence is a no-op. */
  async releaseTask(taskId: string, fence: number, opts: { countAttempt?: boolean; notBeforeMs?: number } = {}): Promise<void> {
    const delay = Math.max(0, opts.notBeforeMs ?? 0);
    const { rowCount } = await this.query("releaseTask", SQL.release, [taskId, fence, opts.countAttempt ?? true, delay], { raw: true });
    if (rowCount === 1) return;
    await this.rejectFencedWrite("releaseTask", taskId, fence, (status) => status === "queued");
  }

  async touchWakeup(taskIds: readonly string[]): Promise<void> {
    const ids = taskIds.filter(isTaskId);
    if (ids.length === 0) return;
    await this.query("touchWakeup", SQL.touch, [ids]);
  }

  /** Oldest wake-up first. */
  async listStaleQueued(olderThanMs: number, limit: number): Promise<string[]> {
    const { rows } = await this.query<{ id: string }>("listStaleQueued", SQL.staleQueued, [Math.max(0, olderThanMs), limitOf(limit)]);
    return rows.map((r) => r.id);
  }

  /** Least recently written first: the likeliest orphans. */
  async listRunning(limit: number): Promise<RunningTask[]> {
    const { rows } = await this.query<{ id: string; fence: string; updated_at: Date | string }>("listRunning", SQL.running, [limitOf(limit)]);
    return rows.map((r) => ({ id: r.id, fence: num(r.fence), updated_at: iso(r.updated_at) }));
  }

  async purgeIdempotencyKeys(limit: number): Promise<number> {
    const { rowCount } = await this.query("purgeIdempotencyKeys", SQL.purgeKeys, [limitOf(limit)]);
    return rowCount ?? 0;
  }

  async agentCostSince(agent: string, since: string): Promise<number> {
    const { rows } = await this.query<{ cost: string | number }>("agentCostSince", SQL.agentCostSince, [agent, since]);
    return num(rows[0]?.cost ?? 0);
  }

  async countByStatus(): Promise<TaskCounts> {
    const { rows } = await this.query<{ status: string; n: number }>("countByStatus", SQL.countByStatus, []);
    const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as TaskCounts;
    for (const r of rows) {
      const status = TASK_STATUSES.find((s) => s === r.status);
      if (status !== undefined) counts[status] = r.n;
    }
    return counts;
  }

  async countOpenWork(): Promise<OpenWork> {
    const { rows } = await this.query<OpenWork>("countOpenWork", SQL.countOpenWork, []);
    return one(rows, "countOpenWork");
  }

  /** See the store's method table and taskList.ts. */
  listTasks(query: TaskListQuery): Promise<TaskList> {
    return listTaskPage((text, values) => this.query("listTasks", text, values), query);
  }

  /** Most recent first. */
  async listDeadLetters(limit: number, tenant?: string): Promise<DeadLetter[]> {
    const { rows } = await this.query<DeadLetterRow>("listDeadLetters", SQL.deadLetters, [limitOf(limit), tenant ?? null]);
    return rows.map(toDeadLetter);
  }

  /**
   * Checkpoints are kept: the redriven task resumes after its last step rather
   * than paying for them again. Publishing the wake-up is the caller's job; if
   * that is lost, the reaper finds the task by its fresh `wakeup_at`.
   */
  async redrive(taskId: string, tenant?: string): Promise<boolean> {
    if (!isTaskId(taskId)) return false;
    const { rows } = await this.query<{ n: number }>("redrive", SQL.redrive, [taskId, tenant ?? null]);
    return rows[0]?.n === 1;
  }

  /** See the store's method table and cancel.ts. */
  cancelTask(taskId: string, tenant: string | undefined, by: string, reason?: string): Promise<CancelResult> {
    if (!isTaskId(taskId)) return Promise.resolve({ outcome: "not_found", previous_status: null, lease_owner: null, task: null });
    return cancelTask((text, values) => this.query("cancelTask", text, values), taskId, tenant, by, reason);
  }

  /** See the store's method table. Not fenced. */
  addUsage(taskId: string, usage: Usage): Promise<boolean> {
    if (!isTaskId(taskId)) return Promise.resolve(false);
    return addUsage((text, values) => this.query("addUsage", text, values), taskId, usage);
  }

  /** Fenced, see approvals.ts. Parking again with the same fence is a no-op. */
  async awaitApproval(taskId: string, fence: number, request: ApprovalRequest): Promise<void> {
    const input = json(request.input);
    const parked = isTaskId(taskId) && (await this.transaction("awaitApproval", (client) => approvals.parkForApproval(client, taskId, fence, request, input)));
    if (parked) return;
    await this.rejectFencedWrite("awaitApproval", taskId, fence, (status) => status === "awaiting_approval");
  }

  async approvalOf(taskId: string, step: number): Promise<Approval | null> {
    if (!isTaskId(taskId)) return null;
    return approvals.approvalOf((text, values) => this.query("approvalOf", text, values), taskId, step);
  }

  /** See the store's method table and approvals.ts. */
  decideApproval(taskId: string, decision: Decision, tenant?: string): Promise<DecideResult> {
    if (!isTaskId(taskId)) return Promise.resolve({ outcome: "not_found", status: null, tenant: null, approval: null });
    return this.transaction("decideApproval", (client) => approvals.decideApproval(client, taskId, decision, tenant));
  }

  listApprovals(limit: number, tenant?: string): Promise<PendingApproval[]> {
    return approvals.listApprovals((text, values) => this.query("listApprovals", text, values), limitOf(limit), tenant);
  }

  expireApprovals(limit: number): Promise<ExpiredApproval[]> {
    return this.transaction("expireApprovals", (client) => approvals.expireApprovals(client, limitOf(limit), json));
  }

  /** See the store's method table. Not fenced: the key names one step of one task, whoever runs it. */
  async toolCallStarted(idempotencyKey: string, taskId: string, step: number, tool: string): Promise<ToolCallEntry> {
    const { rows } = await this.query<ToolCallRow>("toolCallStarted", SQL.toolCallStarted, [idempotencyKey, taskId, step, tool]);
    // No row back: the conflict's WHERE refused the update, so an outcome is recorded; read it.
    const row = rows[0] ?? (await this.query<ToolCallRow>("toolCallStarted", SQL.toolCall, [idempotencyKey])).rows[0];
    if (row === undefined) throw new InternalError(`tool call ${idempotencyKey} vanished from the ledger`, { operation: "toolCallStarted" });
    return toToolCallEntry(row);
  }

  async getToolCall(idempotencyKey: string): Promise<ToolCallEntry | null> {
    const row = (await this.query<ToolCallRow>("getToolCall", SQL.toolCall, [idempotencyKey])).rows[0];
    return row === undefined ? null : toToolCallEntry(row);
  }

  async toolCallFinished(idempotencyKey: string, outcome: ToolOutcome): Promise<ToolOutcome> {
    const { rows } = await this.query<{ outcome: unknown }>("toolCallFinished", SQL.toolCallFinished, [idempotencyKey, json(outcome)]);
    const row = rows[0] ?? (await this.query<ToolCallRow>("toolCallFinished", SQL.toolCall, [idempotencyKey])).rows[0];
    if (row === undefined) throw new InternalError(`tool call ${idempotencyKey} finished without being started`, { operation: "toolCallFinished" });
    return toOutcome(row.outcome);
  }

  async toolCallUnmark(idempotencyKeys: readonly string[]): Promise<number> {
    const { rowCount } = await this.query("toolCallUnmark", SQL.toolCallUnmark, [[...idempotencyKeys]]);
    return rowCount ?? 0;
  }

  createKey(key: NewApiKey, replaces?: KeyReplacement): Promise<ApiKeyInfo> {
    return this.transaction("createKey", (client) => createApiKey(client, key, replaces));
  }

  findKey(id: string): Promise<ApiKeyRecord | null> {
    return findApiKey((text, values) => this.query<ApiKeyRow>("findKey", text, values), id);
  }

  listKeys(tenant?: string): Promise<ApiKeyInfo[]> {
    return listApiKeys((text, values) => this.query<ApiKeyRow>("listKeys", text, values), tenant);
  }

  revokeKey(id: string, tenant?: string): Promise<ApiKeyInfo | null> {
    return revokeApiKey((text, values) => this.query<ApiKeyRow>("revokeKey", text, values), id, tenant);
  }

  /** Prompt versions and rollouts: see the store's method table and agentVersions.ts. */
  putAgentVersion(version: NewAgentVersion): Promise<boolean> {
    return versions.putAgentVersion(this.versionsQuery("putAgentVersion"), version);
  }

  getAgentVersion(agent: string, version: string): Promise<AgentVersion | null> {
    return versions.getAgentVersion(this.versionsQuery("getAgentVersion"), agent, version);
  }

  listAgentVersions(agent: string): Promise<AgentVersionInfo[]> {
    return versions.listAgentVersions(this.versionsQuery("listAgentVersions"), agent);
  }

  getRollout(agent: string): Promise<Rollout | null> {
    return versions.getRollout(this.versionsQuery("getRollout"), agent);
  }

  listRollouts(): Promise<Rollout[]> {
    return versions.listRollouts(this.versionsQuery("listRollouts"));
  }

  syncFileVersion(agent: string, version: string, source: string): Promise<FileSyncResult> {
    return this.transaction("syncFileVersion", (client) => versions.syncFileVersion(client, agent, version, source));
  }

  startCanary(agent: string, version: string, source: string, steps: readonly number[], minTasksPerStep: number, by: string): Promise<Rollout> {
    return this.transaction("startCanary", (client) => versions.startCanary(client, agent, version, source, steps, minTasksPerStep, by));
  }

  abortCanary(agent: string, by: string): Promise<Rollout> {
    return versions.abortCanary(this.versionsQuery("abortCanary"), agent, by);
  }

  decideCanary(agent: string, expectedRevision: number, change: RolloutChange): Promise<DecisionResult> {
    return versions.decideCanary(this.versionsQuery("decideCanary"), agent, expectedRevision, change);
  }

  /** See the store's method table and canaryStats.ts. */
  canaryStats(agent: string, stableVersion: string, canaryVersion: string, since: string, stepSince?: string): Promise<CanaryStats> {
    return canaryStats((text, values) => this.query("canaryStats", text, values), agent, stableVersion, canaryVersion, since, stepSince);
  }

  /** The webhook outbox: see the store's method table and webhooks.ts. */
  claimWebhooks(owner: string, limit: number, leaseMs: number): Promise<WebhookClaim[]> {
    return webhooks.claimWebhooks(this.versionsQuery("claimWebhooks"), owner, limitOf(limit), leaseMs);
  }

  recordWebhookAttempt(id: string, owner: string, attempt: number, result: WebhookAttemptResult): Promise<boolean> {
    return webhooks.recordWebhookAttempt(this.versionsQuery("recordWebhookAttempt"), id, owner, attempt, result);
  }

  taskWebhook(taskId: string, tenant?: string): Promise<TaskWebhookView | null> {
    return webhooks.taskWebhook(this.versionsQuery("taskWebhook"), taskId, tenant);
  }

  private versionsQuery(op: string): versions.Query {
    return <R extends pg.QueryResultRow>(text: string, values: unknown[]) => this.query<R>(op, text, values);
  }

  close(): Promise<void> {
    // Checkpoints still waiting for a batch are written (or refused) before the pool goes.
    return (this.closing ??= (this.checkpoints?.drain() ?? Promise.resolve()).catch(() => undefined).then(() => (this.onClose ? this.onClose() : undefined)));
  }

  /**
   * A fenced write matched no row: say why. `alreadyDone(status)` recognises the
   * state the write itself would have produced, so a retried write is a no-op.
   */
  private async rejectFencedWrite(op: string, taskId: string, fence: number, alreadyDone: (status: string) => boolean): Promise<void> {
    if (!isTaskId(taskId)) throw new TaskNotFoundError(`task ${taskId} not found`, { taskId });
    const { rows } = await this.query<{ fence: string; status: string }>(op, SQL.fenceOf, [taskId]);
    const row = rows[0];
    if (row === undefined) throw new TaskNotFoundError(`task ${taskId} not found`, { taskId });
    const current = num(row.fence);
    if (current !== fence) {
      throw new StaleFenceError(`task ${taskId}: fencing token ${fence} is stale, the current one is ${current}`, { taskId, fence, current });
    }
    if (alreadyDone(row.status)) return;
    // Same token but no longer running: this holder already finished or released the task.
    throw new StaleFenceError(`task ${taskId} is ${row.status}, no longer running under token ${fence}`, {
      taskId,
      fence,
      current,
      status: row.status,
    });
  }

  private async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    op: string,
    text: string,
    values: unknown[],
    // `named: false`: a text whose shape varies with the data (a batch of n rows), sent unnamed: one prepared
    // statement per shape would hold a plan of its own on every connection.
    opts: { raw?: boolean; pool?: pg.Pool; named?: boolean } = {},
  ): Promise<pg.QueryResult<R>> {
    const pool = opts.pool ?? this.pool;
    const statements = opts.named === false ? undefined : this.statements;
    try {
      return await (statements ? statements.run<R>(pool, text, values) : pool.query<R>(text, values));
    } catch (err) {
      // `raw`: the caller inspects the driver error itself (and maps it).
      if (opts.raw) throw err;
      throw toStoreError(err, op, this.target);
    }
  }

  private async transaction<T>(op: string, fn: (client: pg.PoolClient) => Promise<T>, pool: pg.Pool = this.pool): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw toStoreError(err, op, this.target);
    }
    // A checked-out client has none of the pool's listeners: a connection that dies under the transaction
    // (Postgres restarted, the network cut) would be an unhandled 'error' event and end the process. The
    // transaction's query fails with it, and the client is discarded.
    let lost: Error | undefined;
    const onError = (err: Error): void => {
      lost = err;
    };
    client.on("error", onError);
    const release = (err?: Error | boolean): void => {
      client.removeListener("error", onError);
      client.release(err ?? lost);
    };
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      release();
      return result;
    } catch (err) {
      try {
        if (lost) throw lost;
        await client.query("ROLLBACK");
        release();
      } catch (rollbackErr) {
        // The connection is unusable; discarding it ends the transaction with it.
        release(rollbackErr instanceof Error ? rollbackErr : true);
      }
      throw toStoreError(err, op, this.target);
    }
  }
}

interface ToolCallRow {
  starts: number;
  outcome: unknown;
}

/** A ledger outcome as jsonb hands it back (`output` is absent when the tool returned nothing). */
function toOutcome(v: unknown): ToolOutcome {
  const o = (typeof v === "object" && v !== null ? v : {}) as { ok?: unknown; output?: unknown };
  return { ok: o.ok === true, output: o.output ?? null };
}

const toToolCallEntry = (row: ToolCallRow): ToolCallEntry => ({ starts: row.starts, outcome: row.outcome === null ? null : toOutcome(row.outcome) });

function one<R>(rows: R[], op: string): R {
  const row = rows[0];
  if (row === undefined) throw new InternalError(`${op}: the database returned no row`, { operation: op });
  return row;
}

export interface OpenStoreOptions extends PoolOptions {
  /** Apply pending migrations before returning. @default true */
  migrate?: boolean;
  /** Named statements (`PgTaskStoreOptions.preparedStatements`), on Postgres and PGlite. @default true */
  preparedStatements?: boolean;
  /** Checkpoints committed together (`PgTaskStoreOptions.groupCommit`), on Postgres and PGlite. @default true */
  groupCommit?: boolean;
  /** `PgTaskStoreOptions.onBatchFailed`. */
  onBatchFailed?: BatchFailedHook;
}

export interface OpenedStore {
  store: PgTaskStore;
  pool: pg.Pool;
  kind: StoreKind;
  /** The database's address without credentials. */
  target: string;
  /** Closes the store and its pool. Idempotent. */
  close(): Promise<void>;
}

/** Opens the pool for `opts` (Postgres or PGlite), migrates, and hands back a ready store. */
export async function openStore(opts: OpenStoreOptions): Promise<OpenedStore> {
  const handle = await createPool(opts);
  const store = new PgTaskStore(handle.pool, {
    target: handle.target,
    submitPool: handle.submitPool,
    onClose: () => handle.close(),
    preparedStatements: opts.preparedStatements !== false,
    // No more batches on the wire than the pool has connections (PGlite has one): another would only queue in the pool.
    groupCommit: opts.groupCommit === false ? false : { maxInFlight: Math.min(DEFAULT_MAX_IN_FLIGHT, handle.pool.options.max ?? DEFAULT_MAX_IN_FLIGHT) },
    ...(opts.onBatchFailed ? { onBatchFailed: opts.onBatchFailed } : {}),
  });
  if (opts.migrate !== false) {
    try {
      await store.migrate();
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }
  return { store, pool: handle.pool, kind: handle.kind, target: handle.target, close: () => store.close() };
}
