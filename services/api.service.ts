/**
 * `api`: the REST gateway (moleculer-web). Thin: it reads the request, calls
 * `intake` or `checkpoint`, and shapes the answer. Every error, including the
 * body parser's and the router's, leaves as `{"error": {type, message, details?}}`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, LoggerInstance, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { Registry } from "prom-client";
import { refuseNonJson, requestHints, sendError, type RequestHints } from "../src/api/http";
import { readSteps, readTask, taskIdOf } from "../src/api/tasks";
import type { SubmitResult } from "../src/queue/intake";
import { liveAnswer, readyAnswer, type ProbeAnswer } from "../src/health/health";
import type { Resources } from "../src/node/resources";
import { RemoteTaskStore } from "../src/store/remoteStore";
import { traceSubmission } from "../src/telemetry/submission";

interface RestMeta extends RequestHints {
  $statusCode?: number;
  $responseHeaders?: Record<string, string>;
  $responseType?: string;
}

type RestParams = { body?: unknown; params?: Record<string, string>; query?: Record<string, string> };

/** The checkpoint role's reads, made within the request's context (its trace, its meta). */
const checkpointOf = (ctx: Context) => new RemoteTaskStore((action, params) => ctx.call(action, params));

function answer(ctx: Context<unknown, RestMeta>, probe: ProbeAnswer): unknown {
  ctx.meta.$statusCode = probe.status;
  return probe.body;
}

export function apiService(resources: Resources, registry: Registry): ServiceSchema {
  const { config } = resources;
  function onError(this: { logger: LoggerInstance }, req: IncomingMessage, resp: ServerResponse, err: unknown): void {
    sendError(this.logger, req, resp, err);
  }
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
            Object.assign(ctx.meta, requestHints(req));
            refuseNonJson(req);
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
          return readTask(checkpointOf(ctx), taskIdOf(ctx.params));
        },
      },
      getSteps: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          return readSteps(checkpointOf(ctx), taskIdOf(ctx.params));
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
          return ctx.call("intake.redrive", { taskId: taskIdOf(ctx.params) });
        },
      },
      live: {
        visibility: "published",
        handler(ctx: Context<unknown, RestMeta>) {
          return answer(ctx, liveAnswer(resources.health));
        },
      },
      ready: {
        visibility: "published",
        handler(ctx: Context<unknown, RestMeta>) {
          return answer(ctx, readyAnswer(resources.health));
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
