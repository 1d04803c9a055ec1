/**
 * Accepting a task: the submission is validated, committed with its idempotency
 * key, and only then announced with a wake-up. The 202 goes out after the
 * commit, without waiting for the wake-up; one lost after it is the reaper's to find.
 */
import { randomUUID } from "node:crypto";
import type { AgentCatalog } from "../agent/definition";
import { emitQueued } from "../agent/events";
import { DEFAULT_TENANT, IdempotencyKeySchema, parseParams, SubmitTaskSchema } from "../contracts";
import { InternalError, TaskNotFailedError, TaskNotFoundError, ValidationError } from "../errors";
import type { AgentSummary, AgentView, CreateTaskResult, DeadLetter, NewTask, TaskEventSink, WakeUp } from "../contracts";
import { summaryOf, type Rollouts } from "../rollout/control";
import type { TaskStore } from "../store/types";
import { traceparentOf } from "../telemetry/spans";
import { NO_WEBHOOKS, type WebhookAdmission } from "../webhooks/admission";
import type { WakeUps } from "./wakeups";
import type { CreateBatcher } from "./createBatcher";
import { DailyCostGate, effectiveBudgets } from "../budgets";

export interface SubmitResult {
  id: string;
  status: string;
  created: boolean;
  /** For the submitting request's span. */
  prompt_version: string;
}

export interface IntakeDeps {
  store: Pick<TaskStore, "createTask" | "taskByIdempotencyKey" | "listDeadLetters" | "redrive" | "getTask" | "agentCostSince">;
  agents: Pick<AgentCatalog, "get" | "list">;
  wakeUps: Pick<WakeUps, "publishCommitted">;
  /** Where `clawfleet.task.queued` goes, and the node named in it. @default none emitted */
  events?: { sink: TaskEventSink; node: string };
  /** The tenants' submit rate (src/tenancy): over it, a 429 and nothing stored. @default not limited */
  submitQuota?: { admit(tenant: string): Promise<void> };
  /** A submit's `webhook` (src/webhooks): its secret and its URL checked. @default every webhook refused */
  webhooks?: WebhookAdmission;
  /**
   * Prompt versions and canaries (src/rollout): the version a new task is pinned to, and the operator's
   * views and controls. @default every task runs its agent files' version, and the controls are refused
   */
  rollouts?: Pick<Rollouts, "route" | "list" | "view" | "startCanary" | "abortCanary">;
  /**
   * Commits a new task: the group commit of src/queue/createBatcher.ts, which answers each submit after
   * its own task's commit, as `store.createTask` does. @default store.createTask, one call per task
   */
  createTask?: Pick<CreateBatcher, "create">;
  /** Wake-ups sent without waiting that may be on their way at once (see `Intake.announce`). @default MAX_DETACHED_WAKEUPS */
  maxDetachedWakeUps?: number;
}

/** Wake-ups sent without waiting that may be on their way at once; past it a submit waits for its own. */
export const MAX_DETACHED_WAKEUPS = 1024;

/** Dead letters listed when the caller names no (valid) limit, and the most it may name. */
const DEAD_LETTERS_DEFAULT = 100;
const DEAD_LETTERS_MAX = 1000;

export class Intake {
  /** Agents' daily cost caps (src/budgets): read only for an agent that sets `max_daily_cost_usd`. */
  private readonly dailyCost = new DailyCostGate((agent, since) => this.deps.store.agentCostSince(agent, since));
  /** Wake-ups of submits already answered, still on their way (see `announce`). */
  private detachedWakeUps = 0;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(private readonly deps: IntakeDeps) {}

  /** Commits the task (or finds the one its idempotency key already names) and wakes a planner for a new one. */
  async submit(body: unknown, idempotencyKey: string | undefined, tenant: string = DEFAULT_TENANT): Promise<SubmitResult> {
    if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new ValidationError("the request body must be a JSON object", { field: "body" });
    }
    const submission = parseParams(SubmitTaskSchema, body, "invalid task");
    const key = idempotencyKey === undefined ? undefined : parseParams(IdempotencyKeySchema, idempotencyKey, "Idempotency-Key header");
    const agent = this.deps.agents.get(submission.agent);
    // The agent's budgets are the task's defaults and ceiling: a submit may lower them (over one: a 422).
    const budgets = effectiveBudgets(agent, submission.budgets);
    // A retry of a committed submit answers its task, whatever the caps, quotas and DNS say by now.
    if (key !== undefined) {
      const earlier = await this.deps.store.taskByIdempotencyKey(key, tenant);
      if (earlier) return { id: earlier.id, status: earlier.status, created: false, prompt_version: earlier.prompt_version };
    }
    if (agent.maxDailyCostUsd !== undefined) await this.dailyCost.admit(agent.name, agent.maxDailyCostUsd);
    // Resolved and checked now, and again before every delivery (DNS changes): a refused URL stores nothing.
    const webhook = submission.webhook === undefined ? undefined : await (this.deps.webhooks ?? NO_WEBHOOKS).admit(submission.webhook, tenant);
    // Only a valid submission takes a token; one over the rate is refused before anything is stored.
    await this.deps.submitQuota?.admit(tenant);
    // The submitting request's span, the task's trace root: stored with the task, every attempt joins its trace.
    const traceContext = traceparentOf();
    const id = randomUUID();
    // Pinned now: every attempt, resume and redrive of the task runs this version (src/rollout/versions.ts).
    const version = this.deps.rollouts ? (await this.deps.rollouts.route(agent, id)).version : agent.promptVersion;
    const { task, created } = await this.create(
      {
        id,
        agent: agent.name,
        input: submission.input,
        priority: submission.priority ?? "normal",
        metadata: submission.metadata ?? {},
        prompt_version: version,
        ...(traceContext !== undefined ? { trace_context: traceContext } : {}),
        tenant,
        ...(webhook !== undefined ? { webhook } : {}),
        budgets,
      },
      key,
    );
    const traceparent = task.trace_context ?? undefined;
    // After the commit, before the wake-up: subscribers hear of the task before a planner can start it.
    if (created && this.deps.events) emitQueued(this.deps.events.sink, this.deps.events.node, task, "submitted");
    if (created) await this.announce({ taskId: task.id, reason: "submitted", ...(traceparent !== undefined ? { traceparent } : {}) });
    return { id: task.id, status: task.status, created, prompt_version: task.prompt_version };
  }

  /**
   * The new task's wake-up, sent before the 202 but not waited for: the answer waits for the commit,
   * not for Redis (a wake-up is a hint, a lost one the reaper's to find). Past `MAX_DETACHED_WAKEUPS` on
   * their way (Redis slow or away), a submit waits for its own, so they cannot pile up without bound.
   */
  private async announce(wakeUp: WakeUp): Promise<void> {
    // `publishCommitted` logs a failure rather than throw; should one throw all the same, the task is committed.
    const sent = this.deps.wakeUps.publishCommitted(wakeUp).catch(() => undefined);
    if (this.detachedWakeUps >= (this.deps.maxDetachedWakeUps ?? MAX_DETACHED_WAKEUPS)) return sent;
    this.detachedWakeUps++;
    void sent.then(() => {
      if (--this.detachedWakeUps === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    });
  }

  /** Resolves once no wake-up sent without waiting is on its way, or after `ms`: a stopping intake waits for them, not forever. */
  wakeUpsSent(ms: number): Promise<void> {
    if (this.detachedWakeUps === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private create(task: NewTask, key: string | undefined): Promise<CreateTaskResult> {
    return this.deps.createTask ? this.deps.createTask.create(task, key) : this.deps.store.createTask(task, key);
  }

  /**
   * Puts a dead-lettered task back in the queue. Throws TaskNotFoundError for an
   * unknown task and TaskNotFailedError (409) for one that is not `failed`.
   */
  async redrive(taskId: string, tenant?: string): Promise<{ taskId: string; redriven: boolean }> {
    const redriven = await this.deps.store.redrive(taskId, tenant);
    if (!redriven) {
      // With a tenant, another tenant's task is "no task", as an unknown one.
      const task = await this.deps.store.getTask(taskId, tenant);
      if (!task) throw new TaskNotFoundError(`no task ${taskId}`, { id: taskId });
      throw new TaskNotFailedError(`task ${taskId} is ${task.status}, not failed; only a failed task can be redriven`, { id: taskId, status: task.status });
    }
    if (redriven && this.deps.events) {
      const task = await this.deps.store.getTask(taskId);
      if (task) emitQueued(this.deps.events.sink, this.deps.events.node, task, "redrive");
    }
    if (redriven) await this.deps.wakeUps.publishCommitted({ taskId, reason: "redrive" });
    return { taskId, redriven };
  }

  /** The agents this intake accepts tasks for. */
  agents(): AgentSummary[] {
    return this.deps.agents.list().map(summaryOf);
  }

  /** `GET /v1/agents`: every agent with its versions (tasks per version), stable version and canary. */
  listAgents(): Promise<AgentView[]> {
    return this.rollouts().list();
  }

  /** `GET /v1/agents/{name}`; AgentNotFoundError (404) for an agent this intake does not serve. */
  getAgent(name: string): Promise<AgentView> {
    return this.rollouts().view(name);
  }

  /** `POST /v1/agents/{name}/canary` (see Rollouts.startCanary); `by`: who asked. */
  startCanary(name: string, body: unknown, by: string): Promise<AgentView> {
    return this.rollouts().startCanary(name, body, by);
  }

  /** `DELETE /v1/agents/{name}/canary`: CanaryNotRunningError (409) when none runs. */
  abortCanary(name: string, by: string): Promise<AgentView> {
    return this.rollouts().abortCanary(name, by);
  }

  private rollouts(): NonNullable<IntakeDeps["rollouts"]> {
    if (!this.deps.rollouts) throw new InternalError("this intake has no rollout control", { operation: "rollouts" });
    return this.deps.rollouts;
  }

  /** The newest dead letters; a limit that is not a positive integer means the default. */
  deadLetters(limit: unknown, tenant?: string): Promise<DeadLetter[]> {
    const n = Number(limit ?? DEAD_LETTERS_DEFAULT);
    return this.deps.store.listDeadLetters(Number.isInteger(n) && n > 0 ? Math.min(n, DEAD_LETTERS_MAX) : DEAD_LETTERS_DEFAULT, tenant);
  }
}
