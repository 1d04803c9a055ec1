/**
 * The `clawfleet` package: everything a project may import, in one list (tool services import the
 * `ClawfleetTools` mixin from `clawfleet/mixins`). Nothing else is importable (the `exports` map of
 * package.json), and what is listed here follows semver: removing or changing it is a major version.
 */

// Agents: an agent file's fields in code, checked the same way.
export { defineAgent, type AgentDefinition, type AgentSpec, type McpServerConfig, type Tier } from "../src/agent/definition";

// In-process tools (embedded mode, or the process that runs the executor).
export { defineTool, type ToolSpec } from "../src/tools/define";
export type { ToolContext, ToolDefinition } from "../src/tools/tool";

// Running a node from a program (`clawfleet start` is the same node from the command line).
export { startNode, type RunningNode, type StartOptions } from "./start";
export type { LogLevel, Role } from "../src/config";

// Scripted policies for the simulated model (CLAWFLEET_SIM_POLICIES, `clawfleet sim --policies`); an agent
// without one gets the generic policy, which calls every offered tool once.
export {
  firstUserText,
  offersTools,
  pastToolCalls,
  textOf,
  textTurn,
  toolResultText,
  toolTurn,
  type PastToolCall,
  type PolicyRequest,
  type PolicyRoute,
  type SimContentBlock,
  type SimStopReason,
  type SimTurn,
} from "../src/sim";

// Task events (`clawfleet.task.*`), for a project's services to subscribe to.
export {
  TASK_EVENT_NAMES,
  TASK_EVENTS_WILDCARD,
  type TaskEventName,
  type TaskEventPayload,
  type TaskFailedEvent,
  type TaskQueuedEvent,
  type TaskStartedEvent,
  type TaskStepEvent,
  type TaskSucceededEvent,
} from "../src/contracts";

// Canary control events (`clawfleet.control.canary_*`), broadcast to every node, and the agent view of
// `GET /v1/agents` (versions, stable, canary).
export {
  CANARY_EVENT_NAMES,
  CANARY_EVENTS_WILDCARD,
  type AgentView,
  type CanaryAbortedEvent,
  type CanaryEventName,
  type CanaryEventPayload,
  type CanaryStartedEvent,
} from "../src/contracts";

// The REST API's bodies and answers, and the task and step shapes in them.
export type {
  ErrorBody,
  ModelUsage,
  Priority,
  StepView,
  StepsView,
  SubmitTask,
  Submitted,
  TaskError,
  TaskStatus,
  TaskView,
  ToolResult,
  Usage,
} from "../src/contracts";

// Errors a project may catch or throw: `type` is stable; a tool throwing `UnavailableError` has its step
// retried (its back end is down) instead of the model being told.
export {
  AgentNotFoundError,
  BudgetExceededError,
  ClawfleetError,
  ConfigError,
  RateLimitedError,
  TaskNotFoundError,
  ToolNotFoundError,
  UnavailableError,
  ValidationError,
  type ErrorType,
} from "../src/errors";
