/**
 * What a task may look like at rest, whoever reads it (GET /v1/tasks/{id} or the
 * tasks table): a status of the contract, and the fields that status implies.
 */
import { TASK_STATUSES } from "../../src/contracts";
import type { TaskView } from "../../testkit/cluster";

/** A task as the API answers it or the tasks table holds it: what every view has, and its times. */
export interface TaskShape extends TaskView {
  input: unknown;
  metadata: unknown;
  usage: TaskView["usage"] & { cost_usd: number };
  created_at: string | Date;
  started_at: string | Date | null;
  finished_at: string | Date | null;
}

const time = (v: string | Date | null): number | undefined => (v === null ? undefined : new Date(v).getTime());
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Every way `t` is impossible; empty when it is a state the lifecycle can reach. */
export function impossibilities(t: TaskShape): string[] {
  const out: string[] = [];
  const bad = (why: string) => out.push(`${t.id} (${t.status}): ${why}`);
  if (!(TASK_STATUSES as readonly string[]).includes(t.status)) bad("status outside the contract");
  const { input_tokens, output_tokens, cost_usd } = t.usage;
  for (const [k, v] of Object.entries({ attempts: t.attempts, steps: t.steps, input_tokens, output_tokens, cost_usd })) {
    if (!(Number.isFinite(Number(v)) && Number(v) >= 0)) bad(`${k} is ${String(v)}`);
  }
  if (!(typeof t.input === "string" || isObject(t.input))) bad("input is neither a string nor an object");
  if (!isObject(t.metadata)) bad("metadata is not an object");
  const [created, started, finished] = [time(t.created_at), time(t.started_at), time(t.finished_at)];
  if (created === undefined || Number.isNaN(created)) bad("no created_at");
  if (started !== undefined && created !== undefined && started < created) bad(`started before it was created (${String(t.started_at)} < ${String(t.created_at)})`);
  if (finished !== undefined && created !== undefined && finished < created) bad("finished before it was created");
  const terminal = t.status === "succeeded" || t.status === "failed" || t.status === "cancelled";
  if (terminal && finished === undefined) bad("terminal without finished_at");
  if (!terminal && finished !== undefined) bad("finished_at on a task that is not terminal");
  if (t.status === "succeeded" && (t.result === null || t.result === undefined)) bad("succeeded without a result");
  if (t.status === "succeeded" && t.error !== null && t.error !== undefined) bad("succeeded with an error");
  if (t.status === "failed") {
    const e = t.error as { type?: unknown; message?: unknown } | null;
    if (!e || typeof e.type !== "string" || e.type === "" || typeof e.message !== "string") bad(`failed without a typed error: ${JSON.stringify(t.error)}`);
    if (t.result !== null && t.result !== undefined) bad("failed with a result");
  }
  if (t.status === "queued" && t.result !== null && t.result !== undefined) bad("queued with a result");
  if (t.status === "running" && (started === undefined || t.attempts < 1)) bad("running without having started an attempt");
  if ((t.status === "succeeded" || t.status === "running") && t.steps > 0 && started === undefined) bad("steps without a start");
  return out;
}

/** A row of the tasks table in the shape above. */
export function shapeOfRow(r: Record<string, unknown>): TaskShape {
  return {
    id: String(r.id),
    status: String(r.status),
    result: r.result,
    error: r.error,
    attempts: Number(r.attempts),
    steps: Number(r.steps),
    input: r.input,
    metadata: r.metadata,
    usage: { input_tokens: Number(r.input_tokens), output_tokens: Number(r.output_tokens), cost_usd: Number(r.cost_usd) },
    created_at: r.created_at as Date,
    started_at: (r.started_at ?? null) as Date | null,
    finished_at: (r.finished_at ?? null) as Date | null,
  };
}
