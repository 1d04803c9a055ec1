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
  StepsViewSchema,
  SubmitTaskSchema,
  SubmittedSchema,
  TaskViewSchema,
} from "./api";
import { ApiKeyInfoSchema, CreatedKeySchema, CreateKeySchema, KeyRefSchema, type Scope } from "./keys";
import { DeadLetterSchema, IdempotencyKeySchema, TaskIdSchema } from "./task";

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
  paths: Record<string, Partial<Record<"get" | "post" | "delete", OpenApiOperation>>>;
  security: Array<Record<string, string[]>>;
  components: { schemas: Record<string, JsonSchema>; securitySchemes: Record<string, JsonSchema> };
}

/** The document's named schemas; `io` is the side a client sees (what it sends, or what it gets back). */
const COMPONENTS = {
  SubmitTask: { schema: SubmitTaskSchema, io: "input" },
  Submitted: { schema: SubmittedSchema, io: "output" },
  Task: { schema: TaskViewSchema, io: "output" },
  Steps: { schema: StepsViewSchema, io: "output" },
  DeadLetters: { schema: z.array(DeadLetterSchema), io: "output" },
  RedriveResult: { schema: RedriveResultSchema, io: "output" },
  Error: { schema: ErrorBodySchema, io: "output" },
  LiveReport: { schema: LiveReportSchema, io: "output" },
  CreateKey: { schema: CreateKeySchema, io: "input" },
  CreatedKey: { schema: CreatedKeySchema, io: "output" },
  ApiKey: { schema: ApiKeyInfoSchema, io: "output" },
  ApiKeys: { schema: z.array(ApiKeyInfoSchema), io: "output" },
  ReadyReport: { schema: ReadyReportSchema, io: "output" },
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
  422: "schema violation; `details.field` names the field (`body` when the body is not an object)",
  429: "the tenant's submit rate is spent (`rate_limited`); retry after `Retry-After` seconds with the same `Idempotency-Key`",
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
          summary: "Every model and tool step of a task, in order",
          parameters: [taskIdParam],
          responses: { 200: { description: "the task's checkpoints", content: json("Steps") }, ...errors(...AUTH_ERRORS, 404, 503) },
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
  };
}

function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot(), "package.json"), "utf8")) as { version?: unknown };
  return typeof pkg.version === "string" ? pkg.version : "0.0.0";
}
