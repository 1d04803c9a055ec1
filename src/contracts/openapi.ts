/**
 * The REST API as an OpenAPI 3.1 document, generated from the schemas that
 * validate its requests and type its answers. OpenAPI 3.1 takes JSON Schema
 * 2020-12 as is, which is what `z.toJSONSchema` writes.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { projectRoot } from "../paths";
import {
  DeadLetterLimitSchema,
  ErrorBodySchema,
  LiveReportSchema,
  ReadyReportSchema,
  RedriveResultSchema,
  STEPS_PAGE_MAX,
  StepsViewSchema,
  SubmitTaskSchema,
  SubmittedSchema,
  TaskViewSchema,
} from "./api";
import { ApiKeyInfoSchema, CreatedKeySchema, CreateKeySchema, KeyRefSchema, type Scope } from "./keys";
import { AgentNameSchema, AgentViewSchema, StartCanarySchema } from "./rollout";
import { CancelledSchema, CancelTaskBodySchema } from "./cancel";
import { ApprovalBodySchema, ApprovalDecidedSchema, ApprovalStatusQuerySchema, PendingApprovalsSchema } from "./approvals";
import { SetSwitchSchema, SwitchKindSchema, SwitchNameSchema, SwitchSchema } from "./switches";
import { DeadLetterSchema, IdempotencyKeySchema, TaskIdSchema, TaskStatusSchema } from "./task";
import { TASK_LIST_DEFAULT_LIMIT, TASK_LIST_MAX_LIMIT, TaskCursorSchema, TaskListViewSchema } from "./taskList";
import { WebhookPayloadSchema } from "./webhooks";
import { LimitsViewSchema, QueuesViewSchema } from "./dashboard";

export type JsonSchema = Record<string, unknown>;

export interface OpenApiParameter {
  name: string;
  in: "path" | "query" | "header";
  required: boolean;
  description?: string;
  schema: JsonSchema;
}

export interface OpenApiResponse {
  description: string;
  headers?: Record<string, { description: string; schema: JsonSchema }>;
  content?: Record<string, { schema: JsonSchema }>;
}

export interface OpenApiOperation {
  operationId: string;
  summary: string;
  /** The key scope the route needs; absent on the unauthenticated health and metrics routes. */
  "x-clawfleet-scope"?: Scope;
  /** `[]`: no key needed (the document's default asks for a bearer key). */
  security?: Array<Record<string, string[]>>;
  parameters?: OpenApiParameter[];
  requestBody?: { required: boolean; content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, OpenApiResponse>;
}

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description: string };
  paths: Record<string, Partial<Record<"get" | "post" | "put" | "delete", OpenApiOperation>>>;
  security: Array<Record<string, string[]>>;
  components: { schemas: Record<string, JsonSchema>; securitySchemes: Record<string, JsonSchema> };
  /** What Clawfleet sends, not serves: the completion webhook a submit may ask for. */
  webhooks: Record<string, { post: OpenApiOperation }>;
}

/** The document's named schemas; `io` is the side a client sees (what it sends, or what it gets back). */
const COMPONENTS = {
  SubmitTask: { schema: SubmitTaskSchema, io: "input" },
  Submitted: { schema: SubmittedSchema, io: "output" },
  Task: { schema: TaskViewSchema, io: "output" },
  Steps: { schema: StepsViewSchema, io: "output" },
  TaskList: { schema: TaskListViewSchema, io: "output" },
  DeadLetters: { schema: z.array(DeadLetterSchema), io: "output" },
  RedriveResult: { schema: RedriveResultSchema, io: "output" },
  CancelTask: { schema: CancelTaskBodySchema, io: "input" },
  Cancelled: { schema: CancelledSchema, io: "output" },
  ApprovalDecision: { schema: ApprovalBodySchema, io: "input" },
  ApprovalDecided: { schema: ApprovalDecidedSchema, io: "output" },
  PendingApprovals: { schema: PendingApprovalsSchema, io: "output" },
  Error: { schema: ErrorBodySchema, io: "output" },
  LiveReport: { schema: LiveReportSchema, io: "output" },
  CreateKey: { schema: CreateKeySchema, io: "input" },
  CreatedKey: { schema: CreatedKeySchema, io: "output" },
  ApiKey: { schema: ApiKeyInfoSchema, io: "output" },
  ApiKeys: { schema: z.array(ApiKeyInfoSchema), io: "output" },
  ReadyReport: { schema: ReadyReportSchema, io: "output" },
  Agent: { schema: AgentViewSchema, io: "output" },
  Agents: { schema: z.array(AgentViewSchema), io: "output" },
  StartCanary: { schema: StartCanarySchema, io: "input" },
  SetSwitch: { schema: SetSwitchSchema, io: "input" },
  Switch: { schema: SwitchSchema, io: "output" },
  Switches: { schema: z.array(SwitchSchema), io: "output" },
  WebhookEvent: { schema: WebhookPayloadSchema, io: "output" },
  Queues: { schema: QueuesViewSchema, io: "output" },
  Limits: { schema: LimitsViewSchema, io: "output" },
} as const satisfies Record<string, { schema: z.ZodType; io: "input" | "output" }>;

type ComponentName = keyof typeof COMPONENTS;

function jsonSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io });
  return rest;
}

const ref = (name: ComponentName): JsonSchema => ({ $ref: `#/components/schemas/${name}` });
const json = (name: ComponentName) => ({ "application/json": { schema: ref(name) } });

const retryAfter = { "Retry-After": { description: "seconds to wait before retrying", schema: { type: "integer", minimum: 1 } } };

const ERRORS = {
  400: "the body is not JSON, or not sent as `application/json`",
  401: "no API key, or one that is unknown, expired or revoked (`unauthenticated`; answered with `WWW-Authenticate: Bearer`)",
  403: "the key lacks the route's scope (`forbidden`; `details.scope` names it)",
  404: "unknown task, agent, key or route, or one of another tenant",
  409: "the task is not `failed`, so it cannot be redriven (`task_not_failed`)",
  413: "the body is over 1 MiB",
  422: "schema violation; `details.field` names the field (`body` when the body is not an object); `webhook_url_refused` for a submit's webhook URL the SSRF guard refuses (`details.reason` says why)",
  429: "the tenant's submit rate is spent (`rate_limited`), or the agent's `max_daily_cost_usd` for today (`daily_budget_exhausted`, `Retry-After` until 00:00 UTC); retry after `Retry-After` seconds with the same `Idempotency-Key`",
  503: "a dependency or a cluster node is unavailable; retry after `Retry-After` seconds (a submit: with the same `Idempotency-Key`)",
} as const;

function errors(...statuses: Array<keyof typeof ERRORS>): Record<string, OpenApiResponse> {
  return Object.fromEntries(
    statuses.map((status) => [
      String(status),
      { description: ERRORS[status], ...(status === 503 || status === 429 ? { headers: retryAfter } : {}), content: json("Error") },
    ]),
  );
}

/** The errors every authenticated route can answer, besides its own. */
const AUTH_ERRORS = [401, 403] as const;

const keyIdParam: OpenApiParameter = { name: "id", in: "path", required: true, description: "the key's id", schema: jsonSchema(KeyRefSchema, "input") };

const agentNameParam: OpenApiParameter = { name: "name", in: "path", required: true, description: "the agent's name", schema: jsonSchema(AgentNameSchema, "input") };

const taskIdParam: OpenApiParameter = { name: "id", in: "path", required: true, description: "the task id", schema: jsonSchema(TaskIdSchema, "input") };

export interface OpenApiOptions {
  /** @default the version in package.json */
  version?: string;
}

/** The OpenAPI 3.1 document for `POST /v1/tasks` and the other routes the `api` role serves. */
export function openApiDocument(opts: OpenApiOptions = {}): OpenApiDocument {
  const schemas = Object.fromEntries(Object.entries(COMPONENTS).map(([name, c]) => [name, jsonSchema(c.schema, c.io)]));
  return {
    openapi: "3.1.0",
    info: {
      title: "Clawfleet",
      version: opts.version ?? packageVersion(),
      description:
        "Submit agent tasks, follow them step by step, and redrive the ones that failed for good. Every /v1 route takes " +
        "`Authorization: Bearer <key>` (unless the cluster runs with CLAWFLEET_AUTH=off); `x-clawfleet-scope` names the scope it needs.",
    },
    security: [{ bearer: [] }],
    paths: {
      "/v1/tasks": {
        post: {
          operationId: "submitTask",
          summary: "Submit a task; answered once the task is committed",
          "x-clawfleet-scope": "submit",
          parameters: [
            { name: "Idempotency-Key", in: "header", required: false, description: "the same key within 24 h answers the same task", schema: jsonSchema(IdempotencyKeySchema, "input") },
            { name: "traceparent", in: "header", required: false, description: "W3C trace context: linked from the task trace's root span (never adopted as its parent)", schema: { type: "string" } },
          ],
          requestBody: { required: true, content: json("SubmitTask") },
          responses: {
            202: { description: "committed and queued", headers: { Location: { description: "`/v1/tasks/{id}`", schema: { type: "string" } } }, content: json("Submitted") },
            ...errors(400, ...AUTH_ERRORS, 404, 413, 422, 429, 503),
          },
        },
        get: {
          operationId: "listTasks",
          "x-clawfleet-scope": "read",
          summary: "The tenant's tasks, newest first, a page at a time (keyset paging: pass `next_cursor` back as `cursor`)",
          parameters: [
            { name: "status", in: "query", required: false, description: "only tasks in this status", schema: jsonSchema(TaskStatusSchema, "input") },
            { name: "agent", in: "query", required: false, description: "only tasks of this agent", schema: { type: "string", minLength: 1, maxLength: 100 } },
            {
              name: "limit",
              in: "query",
              required: false,
              description: "tasks per page",
              schema: { type: "integer", minimum: 1, maximum: TASK_LIST_MAX_LIMIT, default: TASK_LIST_DEFAULT_LIMIT },
            },
            { name: "cursor", in: "query", required: false, description: "the previous page's `next_cursor`, as it was answered", schema: jsonSchema(TaskCursorSchema, "input") },
          ],
          responses: { 200: { description: "a page of tasks; `next_cursor` is null on the last", content: json("TaskList") }, ...errors(...AUTH_ERRORS, 422, 503) },
        },
      },
      "/v1/tasks/{id}": {
        get: {
          operationId: "getTask",
          "x-clawfleet-scope": "read",
          summary: "A task: status, result, error and usage (per model in `usage.by_model`)",
          parameters: [taskIdParam],
          responses: { 200: { description: "the task", content: json("Task") }, ...errors(...AUTH_ERRORS, 404, 503) },
        },
      },
      "/v1/tasks/{id}/steps": {
        get: {
          operationId: "getSteps",
          "x-clawfleet-scope": "read",
          summary: "Every model and tool step of a task, in order; with `limit`, a page of them (pass `next_after` back as `after`)",
          parameters: [
            taskIdParam,
            { name: "after", in: "query", required: false, description: "only the steps after this step number", schema: { type: "integer", minimum: 0, default: 0 } },
            {
              name: "limit",
              in: "query",
              required: false,
              description: "steps per page; absent, every step (and no `next_after`)",
              schema: { type: "integer", minimum: 1, maximum: STEPS_PAGE_MAX },
            },
          ],
          responses: { 200: { description: "the task's checkpoints; on a paged read `next_after` is null on the last page", content: json("Steps") }, ...errors(...AUTH_ERRORS, 404, 422, 503) },
        },
      },
      "/v1/tasks/{id}/events": {
        get: {
          operationId: "taskEvents",
          "x-clawfleet-scope": "read",
          summary:
            "The task's progress as Server-Sent Events (`step`, `awaiting_approval`, then one of `succeeded`, `failed`, `cancelled`, after which the stream ends). " +
            "Every event's id is durable: reconnect to any replica with `Last-Event-ID` (or `?last_event_id=`) to get exactly the events after it; a cursor ahead of the task's events gets `reset`, then every event. " +
            "An agent with `stream: true` also has `delta` events (`{task_id, step, index, block, text}`: the text of the model turn under way), without an id: transient, never replayed, superseded by the step",
          parameters: [
            taskIdParam,
            { name: "Last-Event-ID", in: "header", required: false, description: "the id of the last event received", schema: { type: "string", pattern: "^\\d{1,15}$" } },
            { name: "last_event_id", in: "query", required: false, description: "the same, for clients that cannot set headers", schema: { type: "string", pattern: "^\\d{1,15}$" } },
          ],
          responses: {
            200: { description: "the event stream", content: { "text/event-stream": { schema: { type: "string" } } } },
            ...errors(...AUTH_ERRORS, 404, 503),
          },
        },
      },
      "/v1/tasks/{id}/redrive": {
        post: {
          operationId: "redrive",
          "x-clawfleet-scope": "operate",
          summary: "Put a failed task back in the queue; it resumes from its checkpoints",
          parameters: [taskIdParam],
          responses: { 200: { description: "whether the task was redriven", content: json("RedriveResult") }, ...errors(400, ...AUTH_ERRORS, 404, 409, 503) },
        },
      },
      "/v1/tasks/{id}/cancel": {
        post: {
          operationId: "cancelTask",
          "x-clawfleet-scope": "operate",
          summary:
            "Cancel a queued, running or awaiting-approval task: it ends `cancelled`, a model call in flight is aborted, and no tool starts " +
            "after the answer. Cancelling a cancelled task again answers the same",
          parameters: [taskIdParam],
          requestBody: { required: false, content: json("CancelTask") },
          responses: {
            202: { description: "the task is cancelled (committed), and the planner running it has acknowledged the abort or did not within the timeout", content: json("Cancelled") },
            ...errors(400, ...AUTH_ERRORS, 404),
            409: { description: "the task already succeeded or failed (`task_finished`; `details.status` says which)", content: json("Error") },
            ...errors(422, 503),
          },
        },
      },
      "/v1/approvals": {
        get: {
          operationId: "listApprovals",
          "x-clawfleet-scope": "read",
          summary: "The tasks in `awaiting_approval` and the exact call each waits on (its `tool_use`), oldest request first",
          parameters: [
            { name: "status", in: "query", required: false, description: "`pending`, the only list there is", schema: jsonSchema(ApprovalStatusQuerySchema, "input") },
            { name: "limit", in: "query", required: false, description: "how many to list (1-1000)", schema: { type: "integer", minimum: 1, maximum: 1000, default: 100 } },
          ],
          responses: { 200: { description: "the pending calls", content: json("PendingApprovals") }, ...errors(...AUTH_ERRORS, 422, 503) },
        },
      },
      "/v1/tasks/{id}/approval": {
        post: {
          operationId: "decideApproval",
          "x-clawfleet-scope": "operate",
          summary:
            "Decide a task's pending call, once: `approve` runs it verbatim (no new model call), `reject` gives the model an error result " +
            "with the reason; the task is queued again",
          parameters: [taskIdParam],
          requestBody: { required: true, content: json("ApprovalDecision") },
          responses: {
            200: { description: "the decision is committed and the task is back in the queue", content: json("ApprovalDecided") },
            ...errors(400, ...AUTH_ERRORS, 404),
            409: {
              description:
                "the call was decided already (`approval_decided`; `details` has the decision and who made it), or the task waits on no call, " +
                "or its call passed its deadline (`not_awaiting_approval`; `details.status`)",
              content: json("Error"),
            },
            ...errors(422, 503),
          },
        },
      },
      "/v1/switches": {
        get: {
          operationId: "listSwitches",
          "x-clawfleet-scope": "read",
          summary: "The kill switches: every one ever set, lifted ones (`paused: false`) included",
          responses: { 200: { description: "the switches", content: json("Switches") }, ...errors(...AUTH_ERRORS, 503) },
        },
      },
      "/v1/switches/{kind}/{name}": {
        put: {
          operationId: "setSwitch",
          "x-clawfleet-scope": "operate",
          summary:
            "Pause or lift a kill switch, cluster-wide within a second. A paused agent or prompt version's tasks stay queued (not failed); " +
            "a call of a paused tool or model waits; `in_flight: abort` cancels the work already under way",
          parameters: [
            { name: "kind", in: "path", required: true, description: "what the switch covers (another kind is a 404)", schema: jsonSchema(SwitchKindSchema, "input") },
            {
              name: "name",
              in: "path",
              required: true,
              description: "an agent's name, a tool's name as the model sees it, a model id as in the agents' tiers, or a prompt version",
              schema: jsonSchema(SwitchNameSchema, "input"),
            },
          ],
          requestBody: { required: true, content: json("SetSwitch") },
          responses: { 200: { description: "the switch as stored", content: json("Switch") }, ...errors(400, ...AUTH_ERRORS, 404, 422, 503) },
        },
      },
      "/v1/dead-letters": {
        get: {
          operationId: "deadLetters",
          "x-clawfleet-scope": "read",
          summary: "Tasks that failed for good, most recent first",
          parameters: [
            {
              name: "limit",
              in: "query",
              required: false,
              description: "how many to list; more than 1000 lists 1000, anything but a positive integer lists 100",
              schema: jsonSchema(DeadLetterLimitSchema, "input"),
            },
          ],
          responses: { 200: { description: "the dead letters", content: json("DeadLetters") }, ...errors(...AUTH_ERRORS, 503) },
        },
      },
      "/v1/agents": {
        get: {
          operationId: "listAgents",
          "x-clawfleet-scope": "read",
          summary: "Every agent: its versions (first seen, tasks), stable version and canary, with the judge's state",
          responses: { 200: { description: "the agents", content: json("Agents") }, ...errors(...AUTH_ERRORS, 503) },
        },
      },
      "/v1/agents/{name}": {
        get: {
          operationId: "getAgent",
          "x-clawfleet-scope": "read",
          summary: "An agent: its versions (first seen, tasks), stable version and canary, with the judge's state",
          parameters: [agentNameParam],
          responses: { 200: { description: "the agent", content: json("Agent") }, ...errors(...AUTH_ERRORS, 404, 503) },
        },
      },
      "/v1/agents/{name}/canary": {
        post: {
          operationId: "startCanary",
          "x-clawfleet-scope": "operate",
          summary: "Start a canary of a new agent file: new tasks run it at `steps[0]` percent; the judge promotes it step by step or rolls it back",
          parameters: [agentNameParam],
          requestBody: { required: true, content: json("StartCanary") },
          responses: {
            201: { description: "the canary runs; the agent as it is now", content: json("Agent") },
            409: { description: "a canary is already running for the agent (`canary_running`)", content: json("Error") },
            ...errors(400, ...AUTH_ERRORS, 404, 413, 422, 503),
          },
        },
        delete: {
          operationId: "abortCanary",
          "x-clawfleet-scope": "operate",
          summary: "Abort the running canary: no new task runs it (tasks already pinned to it keep their version)",
          parameters: [agentNameParam],
          responses: {
            200: { description: "the canary is aborted; the agent as it is now", content: json("Agent") },
            409: { description: "no canary is running for the agent (`canary_not_running`)", content: json("Error") },
            ...errors(...AUTH_ERRORS, 404, 503),
          },
        },
      },
      "/v1/queues": {
        get: {
          operationId: "getQueues",
          "x-clawfleet-scope": "read",
          summary:
            "The wake-up queue's backlog (waiting, handed out and not acked, age of the oldest waiting entry), the tasks not finished yet by status " +
            "and the dead letters, every tenant's: a key of the operator's tenant (`default`) only",
          responses: { 200: { description: "the queues, now", content: json("Queues") }, ...errors(...AUTH_ERRORS, 503) },
        },
      },
      "/v1/limits": {
        get: {
          operationId: "getLimits",
          "x-clawfleet-scope": "read",
          summary:
            "Every configured, learned or agent-named model: its rate limits and their source, what the cluster's calls used of them over the last " +
            "window, and the headroom left (1 − used/limit; null without a limit): a key of the operator's tenant (`default`) only",
          responses: { 200: { description: "the limits, now", content: json("Limits") }, ...errors(...AUTH_ERRORS, 503) },
        },
      },
      "/v1/keys": {
        post: {
          operationId: "createKey",
          summary: "Create an API key (rotation: `replaces` an older key, which keeps working `overlap_seconds` more); the key is shown once",
          "x-clawfleet-scope": "admin",
          requestBody: { required: true, content: json("CreateKey") },
          responses: {
            201: { description: "the key, shown this once; only its hash is stored", content: json("CreatedKey") },
            ...errors(400, ...AUTH_ERRORS, 404, 422, 503),
          },
        },
        get: {
          operationId: "listKeys",
          summary: "The API keys an admin manages, without secrets",
          "x-clawfleet-scope": "admin",
          responses: { 200: { description: "the keys", content: json("ApiKeys") }, ...errors(...AUTH_ERRORS, 503) },
        },
      },
      "/v1/keys/{id}": {
        delete: {
          operationId: "revokeKey",
          summary: "Revoke an API key at once",
          "x-clawfleet-scope": "admin",
          parameters: [keyIdParam],
          responses: { 200: { description: "the revoked key", content: json("ApiKey") }, ...errors(...AUTH_ERRORS, 404, 503) },
        },
      },
      "/health/live": {
        get: {
          operationId: "live",
          security: [],
          summary: "Liveness",
          responses: {
            200: { description: "alive", content: json("LiveReport") },
            503: { description: "the event loop was blocked too long", content: json("LiveReport") },
          },
        },
      },
      "/health/ready": {
        get: {
          operationId: "ready",
          security: [],
          summary: "Readiness of every role this process runs",
          responses: {
            200: { description: "ready", content: json("ReadyReport") },
            503: { description: "not ready; each check says why", content: json("ReadyReport") },
          },
        },
      },
      "/openapi.json": {
        get: {
          operationId: "openapi",
          security: [],
          summary: "This document",
          responses: { 200: { description: "OpenAPI 3.1", content: { "application/json": { schema: { type: "object" } } } } },
        },
      },
      "/metrics": {
        get: {
          operationId: "metrics",
          security: [],
          summary: "Prometheus metrics",
          responses: { 200: { description: "Prometheus text exposition", content: { "text/plain": { schema: { type: "string" } } } } },
        },
      },
    },
    components: { schemas, securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "an API key: `cfk_<id>_<secret>`" } } },
    webhooks: {
      taskEnded: {
        post: {
          operationId: "taskEnded",
          summary:
            "A task submitted with `webhook` ended (succeeded, failed or cancelled). Signed per Standard Webhooks; sent at least once, " +
            "retried with the same `webhook-id` until a 2xx; redirects are not followed",
          security: [],
          parameters: [
            { name: "webhook-id", in: "header", required: true, description: "the event's id, the same on every attempt: dedupe on it", schema: { type: "string" } },
            { name: "webhook-timestamp", in: "header", required: true, description: "Unix seconds of this attempt", schema: { type: "string" } },
            {
              name: "webhook-signature",
              in: "header",
              required: true,
              description: '`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` keyed with the secret\'s bytes (`whsec_<base64>`)',
              schema: { type: "string" },
            },
          ],
          requestBody: { required: true, content: json("WebhookEvent") },
          responses: { "2XX": { description: "received; any other answer (or none within the timeout) is retried" } },
        },
      },
    },
  };
}

function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot(), "package.json"), "utf8")) as { version?: unknown };
  return typeof pkg.version === "string" ? pkg.version : "0.0.0";
}
