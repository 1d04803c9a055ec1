/**
 * Database rows to domain records. `pg` hands back bigint and numeric as
 * strings, timestamptz as Date and jsonb parsed; the domain wants numbers and
 * ISO strings. A row that breaks the schema's own CHECKs is a bug: InternalError.
 */
import {
  BudgetNameSchema,
  TaskBudgetsSchema,
  PRIORITIES,
  TASK_STATUSES,
  type DeadLetter,
  type LlmStepData,
  type Priority,
  type StepRecord,
  type TaskError,
  type TaskRecord,
  type TaskStatus,
  type TaskWebhook,
  type ToolStepData,
  type Usage,
} from "../contracts";
import { InternalError } from "../errors";

/** What `pg` returns for the `tasks` columns (SELECT *). */
export interface TaskRow {
  id: string;
  agent: string;
  status: string;
  input: unknown;
  priority: string;
  metadata: unknown;
  result: unknown;
  error: unknown;
  attempts: number;
  steps: number;
  input_tokens: string | number;
  output_tokens: string | number;
  cache_read_input_tokens: string | number;
  cache_creation_input_tokens: string | number;
  cost_usd: string | number;
  prompt_version: string;
  fence: string | number;
  lease_owner: string | null;
  created_at: Date | string;
  started_at: Date | string | null;
  finished_at: Date | string | null;
  updated_at: Date | string;
  wakeup_at: Date | string;
  trace_context: string | null;
  tenant: string;
  /** Migration 012. */
  cancelled_by?: string | null;
  cancel_reason?: string | null;
  /** Migration 014: `{url, secret_id}` or NULL. */
  webhook?: unknown;
  /** Migration 009. */
  budgets?: unknown;
  budget_exhausted?: string | null;
}

export interface StepRow {
  task_id: string;
  step: number;
  kind: string;
  schema_version: number;
  fence: string | number;
  data: unknown;
  created_at: Date | string;
}

export interface DeadLetterRow {
  task_id: string;
  agent: string;
  error: unknown;
  attempts: number;
  created_at: Date | string;
  tenant: string;
}

function corrupt(what: string, value: unknown): InternalError {
  return new InternalError(`unexpected ${what} in the database`, { value: String(value) });
}

/** bigint and numeric columns; fences and token counts stay far below 2^53. */
export function num(v: string | number): number {
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isFinite(n)) throw corrupt("number", v);
  return n;
}

export function iso(v: Date | string): string {
  const d = v instanceof Date ? v : new Date(v);
  if (Number.isNaN(d.getTime())) throw corrupt("timestamp", v);
  return d.toISOString();
}

export function isoOrNull(v: Date | string | null): string | null {
  return v === null ? null : iso(v);
}

export function status(v: string): TaskStatus {
  const found = TASK_STATUSES.find((s) => s === v);
  if (found === undefined) throw corrupt("status", v);
  return found;
}

export function priority(v: string): Priority {
  const found = PRIORITIES.find((p) => p === v);
  if (found === undefined) throw corrupt("priority", v);
  return found;
}

function record(v: unknown): Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Errors are written by the store itself; a foreign shape is kept readable rather than dropped. */
export function taskError(v: unknown): TaskError | null {
  if (v === null || v === undefined) return null;
  const r = record(v);
  return {
    type: typeof r.type === "string" ? r.type : "unknown",
    message: typeof r.message === "string" ? r.message : JSON.stringify(v),
  };
}

export function usageOf(row: TaskRow): Usage {
  return {
    input_tokens: num(row.input_tokens),
    output_tokens: num(row.output_tokens),
    cache_read_input_tokens: num(row.cache_read_input_tokens),
    cache_creation_input_tokens: num(row.cache_creation_input_tokens),
    cost_usd: num(row.cost_usd),
  };
}

/** The task's webhook as intake stored it; nothing for a task without one. */
function webhookOf(v: unknown): { webhook?: TaskWebhook } {
  const r = record(v);
  return typeof r.url === "string" && typeof r.secret_id === "string" ? { webhook: { url: r.url, secret_id: r.secret_id } } : {};
}

export function toTask(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    agent: row.agent,
    status: status(row.status),
    input: row.input,
    priority: priority(row.priority),
    metadata: record(row.metadata),
    result: row.result ?? null,
    error: taskError(row.error),
    attempts: row.attempts,
    steps: row.steps,
    usage: usageOf(row),
    prompt_version: row.prompt_version,
    fence: num(row.fence),
    created_at: iso(row.created_at),
    started_at: isoOrNull(row.started_at),
    finished_at: isoOrNull(row.finished_at),
    wakeup_at: iso(row.wakeup_at),
    trace_context: row.trace_context ?? null,
    tenant: row.tenant,
    ...(typeof row.cancelled_by === "string" ? { cancelled_by: row.cancelled_by, cancel_reason: row.cancel_reason ?? null } : {}),
    ...webhookOf(row.webhook),
    ...budgetsOf(row),
  };
}

/** Built once: a schema built per row costs more than the parse it runs. */
const BudgetNameOrNull = BudgetNameSchema.nullable();

/** Migration 009's columns; nothing for a task stored before them. */
function budgetsOf(row: TaskRow): Pick<TaskRecord, "budgets" | "budget_exhausted"> {
  const out: Pick<TaskRecord, "budgets" | "budget_exhausted"> = {};
  if (row.budgets !== null && row.budgets !== undefined) {
    const b = TaskBudgetsSchema.safeParse(row.budgets);
    if (!b.success) throw corrupt("budgets", JSON.stringify(row.budgets));
    out.budgets = b.data;
  }
  if (row.budget_exhausted !== undefined) {
    const e = BudgetNameOrNull.safeParse(row.budget_exhausted);
    if (!e.success) throw corrupt("budget_exhausted", row.budget_exhausted);
    out.budget_exhausted = e.data;
  }
  return out;
}

/**
 * `data` is returned as stored: its shape is fixed by `schema_version`, and
 * upgrading an old version is the loader's job (the agent loop), not the store's.
 */
export function toStep(row: StepRow): StepRecord {
  const base = {
    task_id: row.task_id,
    step: row.step,
    schema_version: row.schema_version,
    fence: num(row.fence),
    created_at: iso(row.created_at),
  };
  if (row.kind === "llm") return { ...base, kind: "llm", data: row.data as LlmStepData };
  if (row.kind === "tool") return { ...base, kind: "tool", data: row.data as ToolStepData };
  throw corrupt("step kind", row.kind);
}

export function toDeadLetter(row: DeadLetterRow): DeadLetter {
  return {
    task_id: row.task_id,
    agent: row.agent,
    error: taskError(row.error) ?? { type: "unknown", message: "no error recorded" },
    attempts: row.attempts,
    created_at: iso(row.created_at),
    tenant: row.tenant,
  };
}
