/**
 * The task lifecycle events (src/contracts/events.ts) as the planner and intake
 * emit them: one per committed transition, built here from what the attempt
 * already knows, so emitting costs no extra read.
 *
 * A planner's attempt goes: claimed (the task row as the claim returned it: its
 * usage and steps so far) → `started` → one `step` per accepted checkpoint →
 * `succeeded` or `failed` once the terminal write is committed. An attempt that
 * ends without a terminal write (handed back on shutdown or after a passing
 * failure, or abandoned to a newer lease holder) emits nothing: the task is not
 * finished, and the attempt that resumes it emits `started` again.
 */
import type { LoopLogger, RunOutcome, StepEvent } from "./attempt";
import { messageOf } from "../errors";
import type { WakeUpOutcome } from "./settle";
import { emptyUsage, type TaskEventSink, type TaskRecord, type Usage } from "../contracts";

/** What an attempt keeps between its events. */
interface Running {
  agent: string;
  tenant: string;
  prompt_version: string;
  attempt: number;
  step: number;
  usage: Usage;
}

/** Attempts remembered at once; more only if terminal writes keep failing (an entry is then left behind). */
const MAX_TRACKED = 10_000;

export function addUsage(a: Usage, b: Usage | undefined): Usage {
  if (!b) return a;
  return {
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
    cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
    cost_usd: a.cost_usd + b.cost_usd,
  };
}

const now = () => new Date().toISOString();

/** What a sink needs of a Moleculer broker. */
export interface EventEmitter {
  emit(event: string, payload: unknown): Promise<unknown> | void;
}

/**
 * Events through the broker's `emit`: each subscribing service (Moleculer event group) gets one copy,
 * balanced across its instances. Fire and forget: a failed emit is logged, never the caller's failure.
 */
export function taskEventSink(broker: EventEmitter, logger: Pick<LoopLogger, "warn">): TaskEventSink {
  return (name, payload) => {
    const failed = (err: unknown) => logger.warn({ event: "emit.failed", taskId: payload.task_id, name, err: messageOf(err) }, "event emit failed");
    try {
      void Promise.resolve(broker.emit(name, payload)).catch(failed);
    } catch (err) {
      failed(err);
    }
  };
}

/** `clawfleet.task.queued`, for intake: a task committed as new, or a failed one put back. */
export function emitQueued(
  sink: TaskEventSink,
  node: string,
  task: Pick<TaskRecord, "id" | "agent" | "prompt_version" | "priority" | "steps" | "usage" | "tenant">,
  reason: "submitted" | "redrive",
): void {
  sink("clawfleet.task.queued", {
    task_id: task.id,
    agent: task.agent,
    tenant: task.tenant,
    prompt_version: task.prompt_version,
    status: "queued",
    step: task.steps,
    usage: reason === "submitted" ? emptyUsage() : task.usage,
    at: now(),
    node,
    reason,
    priority: task.priority,
  });
}

/** `clawfleet.task.cancelled`, for intake: the cancel is committed (the task row as the cancel left it). */
export function emitCancelled(sink: TaskEventSink, node: string, task: Pick<TaskRecord, "id" | "agent" | "prompt_version" | "steps" | "usage" | "tenant">): void {
  sink("clawfleet.task.cancelled", {
    task_id: task.id,
    agent: task.agent,
    tenant: task.tenant,
    prompt_version: task.prompt_version,
    status: "cancelled",
    step: task.steps,
    usage: task.usage,
    at: now(),
    node,
  });
}

/** The planner's side: fed by the task worker's hooks and the attempt's step interceptor. */
export class AttemptEvents {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly sink: TaskEventSink,
    private readonly node: string,
  ) {}

  /** The task row as the claim returned it. */
  claimed(task: Pick<TaskRecord, "id" | "agent" | "prompt_version" | "attempts" | "steps" | "usage" | "tenant">): void {
    this.running.delete(task.id);
    if (this.running.size >= MAX_TRACKED) {
      const oldest = this.running.keys().next().value;
      if (oldest !== undefined) this.running.delete(oldest);
    }
    this.running.set(task.id, { agent: task.agent, tenant: task.tenant, prompt_version: task.prompt_version, attempt: task.attempts, step: task.steps, usage: task.usage });
  }

  started(taskId: string): void {
    const r = this.running.get(taskId);
    if (!r) return;
    this.sink("clawfleet.task.started", { ...this.base(taskId, r), status: "running", attempt: r.attempt, resumed_at_step: r.step + 1 });
  }

  /** After a checkpoint was accepted: a refused (fenced) write never gets here. */
  step(e: StepEvent): void {
    const r = this.running.get(e.taskId);
    if (!r) return;
    r.step = Math.max(r.step, e.step);
    r.usage = addUsage(r.usage, e.usage);
    this.sink("clawfleet.task.step", {
      ...this.base(e.taskId, r),
      status: "running",
      step: e.step,
      kind: e.kind,
      ...(e.tool !== undefined ? { tool: e.tool } : {}),
      ...(e.ok !== undefined ? { ok: e.ok } : {}),
      ...(e.model !== undefined ? { model: e.model } : {}),
      ...(e.usage !== undefined ? { step_usage: e.usage } : {}),
      duration_ms: e.duration_ms,
    });
  }

  /** How the attempt ended; only a committed terminal write, or a committed park on a gated call, is a transition. */
  settled(taskId: string, outcome: WakeUpOutcome, detail: RunOutcome | undefined): void {
    const r = this.running.get(taskId);
    this.running.delete(taskId);
    if (!r) return;
    if (outcome === "succeeded") this.sink("clawfleet.task.succeeded", { ...this.base(taskId, r), status: "succeeded" });
    else if (outcome === "failed") {
      const error = detail?.kind === "failed" ? detail.error : { type: "internal_error", message: "task failed" };
      this.sink("clawfleet.task.failed", { ...this.base(taskId, r), status: "failed", error });
    } else if (outcome === "awaiting_approval" && detail?.kind === "awaiting_approval") {
      const { tool, input } = detail.approval;
      this.sink("clawfleet.task.awaiting_approval", { ...this.base(taskId, r), status: "awaiting_approval", tool, tool_input: input });
    }
  }

  private base(taskId: string, r: Running) {
    return { task_id: taskId, agent: r.agent, tenant: r.tenant, prompt_version: r.prompt_version, step: r.step, usage: r.usage, at: now(), node: this.node };
  }
}
