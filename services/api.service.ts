/**
 * `api`: the REST gateway (moleculer-web). Thin: it reads the request, calls
 * `intake` or `checkpoint`, and shapes the answer. Every error, including the
 * body parser's and the router's, leaves as `{"error": {type, message, details?}}`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, LoggerInstance, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import { httpError, stepView, taskView } from "../src/api/views";
import { TaskIdSchema, type StepRecord, type TaskRecord } from "../src/domain";
import { messageOf, TaskNotFoundError } from "../src/errors";
import type { Resources } from "../src/runtime/resources";
import type { Registry } from "prom-client";
import { traceSubmission } from "../src/telemetry/submission";
import type { SubmitResult } from "./intake.service";

interface RestMeta {
  $statusCode?: number;
  $responseHeaders?: Record<string, string>;
  $responseType?: string;
  idempotencyKey?: string;
  /** The request's W3C `traceparent` header: the parent of the task's root span. */
  httpTraceparent?: string;
}

type RestParams = { body?: unknown; params?: Record<string, string>; query?: Record<string, string> };

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(payload), ...headers });
  res.end(payload);
}

export function apiService(resources: Resources, registry: Registry): ServiceSchema {
  const { config } = resources;
  function onError(this: { logger: LoggerInstance }, req: IncomingMessage, resp: ServerResponse, err: unknown): void {
    const { status, body, headers } = httpError(err);
    if (status >= 500 && status !== 503) {
      this.logger.error({ event: "http.error", method: req.method, url: req.url, err: messageOf(err), stack: (err as Error).stack }, "request failed");
    }
    sendJson(resp, status, body, headers);
  }
  const taskId = (params: RestParams): string => {
    const id = params.params?.id ?? "";
    if (!TaskIdSchema.safeParse(id).success) throw new TaskNotFoundError(`no task ${JSON.stringify(id.slice(0, 64))}`, { id: id.slice(0, 64) });
    return id;
  };
  return {
    name: "api",
    mixins: [ApiGateway],
    settings: {
      port: config.port,
      ip: "0.0.0.0",
      log4XXResponses: false,
      logRequest: "debug",
      logResponse: "debug",
      logRequestParams: null,
      logResponseData: null,
      routes: [
        {
          path: "/v1",
          mappingPolicy: "restrict",
          mergeParams: false,
          bodyParsers: { json: { strict: false, limit: "1mb" }, urlencoded: false },
          aliases: {
            "POST /tasks": "api.submitTask",
            "GET /tasks/:id": "api.getTask",
            "GET /tasks/:id/steps": "api.getSteps",
            "GET /dead-letters": "api.deadLetters",
            "POST /tasks/:id/redrive": "api.redrive",
          },
          onBeforeCall(ctx: Context<unknown, RestMeta>, _route: unknown, req: IncomingMessage) {
            const key = req.headers["idempotency-key"];
            if (typeof key === "string") ctx.meta.idempotencyKey = key;
            const traceparent = req.headers.traceparent;
            if (typeof traceparent === "string") ctx.meta.httpTraceparent = traceparent;
            const type = req.headers["content-type"] ?? "";
            const length = Number(req.headers["content-length"] ?? 0);
            if (req.method === "POST" && length > 0 && !/^application\/(.+\+)?json\b/i.test(type)) {
              throw Object.assign(new Error("send the body as JSON with Content-Type: application/json"), { status: 400, type: "entity.parse.failed" });
            }
          },
          onError,
        },
        {
          path: "/health",
          mappingPolicy: "restrict",
          aliases: { "GET /live": "api.live", "GET /ready": "api.ready" },
          onError,
        },
        {
          path: "/",
          mappingPolicy: "restrict",
          aliases: { "GET /metrics": "api.metrics" },
          onError,
        },
      ],
      onError,
    },
    actions: {
      submitTask: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          // The task's trace starts here (see src/telemetry/submission.ts).
          const r = await traceSubmission(ctx.meta.httpTraceparent, ctx.params.body, () =>
            ctx.call<SubmitResult, Record<string, unknown>>("intake.submit", {
              body: ctx.params.body,
              ...(ctx.meta.idempotencyKey !== undefined ? { idempotencyKey: ctx.meta.idempotencyKey } : {}),
            }),
          );
          ctx.meta.$statusCode = 202;
          ctx.meta.$responseHeaders = { Location: `/v1/tasks/${r.id}` };
          return { id: r.id, status: r.status };
        },
      },
      getTask: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          const id = taskId(ctx.params);
          const [task, steps] = await Promise.all([
            ctx.call<TaskRecord | null, { id: string }>("checkpoint.getTask", { id }),
            // For usage.by_model; a task has tens of steps, one indexed read.
            ctx.call<StepRecord[], { taskId: string }>("checkpoint.listSteps", { taskId: id }),
          ]);
          if (!task) throw new TaskNotFoundError(`no task ${id}`, { id });
          return taskView(task, steps);
        },
      },
      getSteps: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          const id = taskId(ctx.params);
          const task = await ctx.call<TaskRecord | null, { id: string }>("checkpoint.getTask", { id });
          if (!task) throw new TaskNotFoundError(`no task ${id}`, { id });
          const steps = await ctx.call<StepRecord[], { taskId: string }>("checkpoint.listSteps", { taskId: id });
          return { id, status: task.status, steps: steps.map(stepView) };
        },
      },
      deadLetters: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          return ctx.call("intake.deadLetters", { limit: Number(ctx.params.query?.limit ?? 100) });
        },
      },
      redrive: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          return ctx.call("intake.redrive", { taskId: taskId(ctx.params) });
        },
      },
      live: {
        visibility: "published",
        handler(ctx: Context<unknown, RestMeta>) {
          const live = resources.health.live();
          if (live.status !== "ok") ctx.meta.$statusCode = 503;
          return live;
        },
      },
      ready: {
        visibility: "published",
        handler(ctx: Context<unknown, RestMeta>) {
          const r = resources.health.ready();
          if (!r.ready) ctx.meta.$statusCode = 503;
          return { status: r.ready ? "ready" : "not_ready", checks: r.checks };
        },
      },
      metrics: {
        visibility: "published",
        async handler(ctx: Context<unknown, RestMeta>) {
          ctx.meta.$responseType = registry.contentType;
          return registry.metrics();
        },
      },
    },
    methods: {
      // moleculer-web's default logs every error without a numeric `code` (body-parser's 400/413
      // among them) as "Request error!"; onError above logs the server-side ones with their cause.
      errorHandler(this: { sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void }, req: IncomingMessage, res: ServerResponse, err: unknown) {
        this.sendError(req, res, err);
      },
    },
    started() {
      resources.health.register("api");
    },
    stopped() {
      resources.health.unregister("api");
    },
  };
}
