/**
 * Every error Clawfleet raises on purpose. Each has a stable `type` (what API
 * clients and retry policies match on), a `retryable` flag and the context to act
 * on it in `data`. They extend MoleculerError so they cross the transporter intact:
 * `ClawfleetRegenerator` rebuilds the right class on the receiving node.
 *
 * The mapping to HTTP status lives here too (`httpStatusOf`), and nowhere else.
 */
import { Errors } from "moleculer";
import type { ErrorBody } from "./contracts/api";

export type ErrorData = Record<string, unknown> | undefined;

export abstract class ClawfleetError extends Errors.MoleculerError {
  abstract readonly errorType: string;
  constructor(message: string, code: number, type: string, data?: ErrorData) {
    super(message, code, type, data);
  }
}

function define(errorType: string, code: number, retryable: boolean) {
  return class extends ClawfleetError {
    readonly errorType = errorType;
    constructor(message: string, data?: ErrorData) {
      super(message, code, errorType, data);
      this.retryable = retryable;
    }
  };
}

/** Misconfiguration found at start-up: names the variable and what to do. */
export class ConfigError extends Error {
  constructor(
    public readonly variable: string,
    reason: string,
  ) {
    super(`${variable}: ${reason}`);
    this.name = "ConfigError";
  }
}

/** The request body is not JSON. */
export class MalformedRequestError extends define("malformed_request", 400, false) {}
/** The request is JSON but violates the schema; `data.field` names the offending field. */
export class ValidationError extends define("validation_error", 422, false) {}
/** A submit's webhook URL is not one Clawfleet will call (README, "Webhooks"); `data.reason` says why. */
export class WebhookUrlRefusedError extends define("webhook_url_refused", 422, false) {}
export class TaskNotFoundError extends define("task_not_found", 404, false) {}
export class AgentNotFoundError extends define("agent_not_found", 404, false) {}
export class RouteNotFoundError extends define("not_found", 404, false) {}
export class PayloadTooLargeError extends define("payload_too_large", 413, false) {}
/** The provider's limit is exhausted for now; `data.retryAfter` is in seconds. */
export class RateLimitedError extends define("rate_limited", 429, true) {}
/** The agent's `max_daily_cost_usd` is spent for today (UTC); `data.retryAfter` is the seconds until 00:00 UTC. */
export class DailyBudgetExhaustedError extends define("daily_budget_exhausted", 429, true) {}
/** The write carried a fencing token older than the task's current one: a newer lease holder exists. */
export class StaleFenceError extends define("stale_fence", 409, false) {}
/** The task exists but is not `failed`, so there is nothing to redrive. */
export class TaskNotFailedError extends define("task_not_failed", 409, false) {}
/** A cancel of a task that already succeeded or failed: nothing is left to stop; `data.status` names its end. */
export class TaskFinishedError extends define("task_finished", 409, false) {}
/**
 * The task was cancelled (`POST /v1/tasks/{id}/cancel`): its attempt stops, and nothing of it is retried. The
 * reason an attempt's calls are aborted with, and what an executor answers for a call of a cancelled task.
 */
export class TaskCancelledError extends define("task_cancelled", 409, false) {}
/** The task's gated call was decided already (`data.decision`, `data.by`): a decision is recorded once. */
export class ApprovalDecidedError extends define("approval_decided", 409, false) {}
/** The task waits on no call for a decision (`data.status` says what it is doing), or its call's deadline passed. */
export class NotAwaitingApprovalError extends define("not_awaiting_approval", 409, false) {}
/** The lease could not be renewed or was taken over: stop work on the task at once. */
export class LeaseLostError extends define("lease_lost", 409, false) {}
/** The provider (or simulated model) failed in a way worth retrying. */
export class ProviderError extends define("provider_error", 502, true) {}
/** The provider refused the request for a reason retrying will not fix. */
export class ProviderRequestError extends define("provider_request_error", 502, false) {}
/** A dependency (database, Redis, broker) is unavailable. */
export class UnavailableError extends define("unavailable", 503, true) {}
/** The model asked for something invalid (unknown tool, malformed input) beyond what the loop absorbs. */
export class ModelBehaviorError extends define("model_behavior_error", 500, false) {}
/** A task's budget is spent (`data.budget` names which, `data.limit` its value). */
export class BudgetExceededError extends define("budget_exceeded", 500, false) {}
export class ToolNotFoundError extends define("tool_not_found", 404, false) {}
/** No API key, or one that is unknown, expired or revoked: 401, answered with `WWW-Authenticate: Bearer`. */
export class UnauthenticatedError extends define("unauthenticated", 401, false) {}
/** A valid API key without the scope the route needs; `data.scope` names it. */
export class ForbiddenError extends define("forbidden", 403, false) {}
/** No such API key for the caller's tenant (another tenant's key is not told apart from an unknown one). */
export class KeyNotFoundError extends define("key_not_found", 404, false) {}
/** A canary is already running for the agent: abort it (`DELETE /v1/agents/{name}/canary`) before starting another. */
export class CanaryRunningError extends define("canary_running", 409, false) {}
/** No canary is running for the agent, so there is none to abort. */
export class CanaryNotRunningError extends define("canary_not_running", 409, false) {}
/**
 * A task is pinned to a prompt version that no agent file has and the store does not hold: it cannot run as
 * submitted, and running another version in its place would break the pin. Not retryable: the task fails.
 */
export class AgentVersionNotFoundError extends define("agent_version_not_found", 404, false) {}
/**
 * A checkpoint written by a newer build than this one (a rolling deploy, mid-way): not the task's fault and
 * not this planner's to judge. Retryable: the attempt ends uncounted and the task waits for a newer planner.
 */
export class CheckpointTooNewError extends define("checkpoint_too_new", 503, true) {}
export class InternalError extends define("internal_error", 500, false) {}
/** A call its caller cancelled (a planner shutting down past its drain): nothing failed, the work is handed on. */
export class CallCancelledError extends define("call_cancelled", 503, true) {}
/**
 * A side-effect tool was started and its outcome is unknown (it timed out, its node was lost mid-call, the
 * call failed in transport). Retryable: the attempt ends and the same step is retried under the same
 * idempotency key, so the tool is asked again, never called afresh by the model. With `data.final` (the
 * outcome stayed unknown as often as the executor allows) it is not retryable, and the task fails with it.
 * The flag is read from `data`, so a restored copy on the planner's node behaves the same.
 */
export class ToolOutcomeUnknownError extends define("tool_outcome_unknown", 504, true) {
  constructor(message: string, data?: ErrorData) {
    super(message, data);
    this.retryable = data?.final !== true;
  }
}

const CLASSES = {
  malformed_request: MalformedRequestError,
  validation_error: ValidationError,
  webhook_url_refused: WebhookUrlRefusedError,
  task_not_found: TaskNotFoundError,
  agent_not_found: AgentNotFoundError,
  not_found: RouteNotFoundError,
  payload_too_large: PayloadTooLargeError,
  rate_limited: RateLimitedError,
  daily_budget_exhausted: DailyBudgetExhaustedError,
  stale_fence: StaleFenceError,
  task_not_failed: TaskNotFailedError,
  task_finished: TaskFinishedError,
  task_cancelled: TaskCancelledError,
  approval_decided: ApprovalDecidedError,
  not_awaiting_approval: NotAwaitingApprovalError,
  lease_lost: LeaseLostError,
  provider_error: ProviderError,
  provider_request_error: ProviderRequestError,
  unavailable: UnavailableError,
  model_behavior_error: ModelBehaviorError,
  budget_exceeded: BudgetExceededError,
  tool_not_found: ToolNotFoundError,
  unauthenticated: UnauthenticatedError,
  forbidden: ForbiddenError,
  key_not_found: KeyNotFoundError,
  canary_running: CanaryRunningError,
  canary_not_running: CanaryNotRunningError,
  agent_version_not_found: AgentVersionNotFoundError,
  internal_error: InternalError,
  call_cancelled: CallCancelledError,
  tool_outcome_unknown: ToolOutcomeUnknownError,
} as const satisfies Record<string, new (message: string, data?: ErrorData) => ClawfleetError>;

export type ErrorType = keyof typeof CLASSES;

/** Rebuilds a Clawfleet error from its wire form (`type`, `message`, `data`); undefined for foreign errors. */
export function restoreError(type: unknown, message: string, data: unknown): ClawfleetError | undefined {
  if (typeof type !== "string" || !(type in CLASSES)) return undefined;
  const Cls = CLASSES[type as ErrorType];
  return new Cls(message, (data ?? undefined) as ErrorData);
}

/** Moleculer error regenerator: restores Clawfleet's classes on the receiving node. */
export class ClawfleetRegenerator extends Errors.Regenerator {
  override restoreCustomError(plainError: Errors.PlainMoleculerError, payload: unknown): Error | undefined {
    void payload;
    return restoreError(plainError.type, plainError.message, plainError.data);
  }
}

/**
 * Moleculer's errors that say a node or the transport failed, not the request (a node left mid-call, a NATS
 * blip, a role not running): by name, which survives the trip over the broker. ServiceNotFoundError is one
 * too: the API calls only Clawfleet's own roles, so a missing one is a role down, not a wrong URL.
 */
const TRANSPORT_FAILURES: ReadonlySet<string> = new Set([
  "RequestRejectedError",
  "RequestTimeoutError",
  "RequestSkippedError",
  "ServiceNotAvailableError",
  "ServiceNotFoundError",
  "BrokerDisconnectedError",
  "QueueIsFullError",
  "CircuitBreakerOpenError",
]);

/** A failure of the way to a service, not of the request: the client should retry it (503 + Retry-After). */
export function isTransportFailure(err: unknown): boolean {
  const name = (err as { name?: unknown } | null | undefined)?.name;
  return typeof name === "string" && TRANSPORT_FAILURES.has(name);
}

/** HTTP status for any error: Clawfleet's own carry their code; a transport failure is a 503; anything else is a 500. */
export function httpStatusOf(err: unknown): number {
  if (err instanceof ClawfleetError) return err.code;
  if (isTransportFailure(err)) return 503;
  return 500;
}

/** `{"error": {"type", "message", "details"?}}`, the one error body the REST API sends. */
export function errorBody(err: unknown): ErrorBody {
  if (err instanceof ClawfleetError) {
    const details = err.data as Record<string, unknown> | undefined;
    return { error: { type: err.errorType, message: err.message, ...(details ? { details } : {}) } };
  }
  return { error: { type: "internal_error", message: "internal error" } };
}

export function isRetryable(err: unknown): boolean {
  return err instanceof Errors.MoleculerError ? err.retryable === true : false;
}

/** Message of any thrown value, for logs and task errors. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Why a signal was aborted: its reason when that is an Error (as `AbortController.abort()` makes it), else `fallback()`. */
export function abortReasonOf(signal: AbortSignal | null | undefined, fallback: () => Error): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : fallback();
}

/** Failures of a node or dependency (not of a task): what trips a circuit breaker. */
export function isInfrastructureFailure(err: Error): boolean {
  return (
    err instanceof UnavailableError ||
    err instanceof Errors.RequestTimeoutError ||
    err instanceof Errors.ServiceNotAvailableError ||
    err.name === "RequestTimeoutError"
  );
}
