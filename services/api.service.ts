/**
 * `api`: the REST gateway (moleculer-web). Thin: it authenticates the request
 * (src/auth), calls `intake` or `checkpoint` for the key's tenant, and shapes
 * the answer. Every error, including the body parser's and the router's,
 * leaves as `{"error": {type, message, details?}}`.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Context, LoggerInstance, ServiceBroker, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { Registry } from "prom-client";
import { answerClientError, refuseNonJson, requestHints, sendError, type RequestHints } from "../src/api/http";
import { scopeOf, v1Aliases } from "../src/api/routes";
import { readSteps, readTask, taskIdOf } from "../src/api/tasks";
import { createKey, KeyVerifier, listKeys, requireScope, revokeKey } from "../src/auth";
import { KeyRefSchema } from "../src/contracts";
import { RouteNotFoundError, UnauthenticatedError } from "../src/errors";
import type { SubmitResult } from "../src/queue/intake";
import { liveAnswer, readyAnswer, type ProbeAnswer } from "../src/health/health";
import type { Resources } from "../src/node/resources";
import { RemoteTaskStore } from "../src/store/remoteStore";
import { traceSubmission } from "../src/telemetry/submission";

interface RestMeta extends RequestHints {
  /** The API key's tenant and id, set by the /v1 route before any action runs. */
  tenant?: string;
  keyId?: string;
  $statusCode?: number;
  $responseHeaders?: Record<string, string>;
  $responseType?: string;
}

type RestParams = { body?: unknown; params?: Record<string, string>; query?: Record<string, string> };

/** The checkpoint role's reads, made within the request's context (its trace, its meta). */
const checkpointOf = (ctx: Context) => new RemoteTaskStore((action, params) => ctx.call(action, params));

/** The caller's tenant; an action reached without passing the /v1 route's authentication has none. */
function tenantOf(ctx: Context<unknown, RestMeta>): string {
  if (ctx.meta.tenant === undefined) throw new UnauthenticatedError("no authenticated tenant for this call");
  return ctx.meta.tenant;
}

const keyIdOf = (params: RestParams): string => KeyRefSchema.safeParse(params.params?.id).data ?? "";

function answer(ctx: Context<unknown, RestMeta>, probe: ProbeAnswer): unknown {
  ctx.meta.$statusCode = probe.status;
  return probe.body;
}

export function apiService(resources: Resources, registry: Registry): ServiceSchema {
  const { config } = resources;
  let verifier: KeyVerifier | undefined;
  const keys = () => {
    if (!verifier) throw new Error("api service is not created");
    return verifier;
  };
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
          aliases: v1Aliases("api"),
          async onBeforeCall(ctx: Context<unknown, RestMeta>, _route: unknown, req: IncomingMessage, _res: unknown, alias: { action?: string }) {
            const principal = await keys().authenticate(req.headers.authorization);
            const scope = scopeOf(alias.action ?? "");
            if (scope === undefined) throw new RouteNotFoundError("no such route");
            requireScope(principal, scope);
            Object.assign(ctx.meta, requestHints(req), { tenant: principal.tenant, keyId: principal.keyId });
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
              tenant: tenantOf(ctx),
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
          return readTask(checkpointOf(ctx), taskIdOf(ctx.params), tenantOf(ctx));
        },
      },
      getSteps: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          return readSteps(checkpointOf(ctx), taskIdOf(ctx.params), tenantOf(ctx));
        },
      },
      deadLetters: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          return ctx.call("intake.deadLetters", { limit: Number(ctx.params.query?.limit ?? 100), tenant: tenantOf(ctx) });
        },
      },
      redrive: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          return ctx.call("intake.redrive", { taskId: taskIdOf(ctx.params), tenant: tenantOf(ctx) });
        },
      },
      createKey: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          const created = await createKey(checkpointOf(ctx), principalOf(ctx), ctx.params.body);
          // A rotation shortened the replaced key's life: this process stops trusting its cached verdict now.
          const replaced = (ctx.params.body as { replaces?: unknown }).replaces;
          if (typeof replaced === "string") keys().forget(replaced);
          ctx.meta.$statusCode = 201;
          return created;
        },
      },
      listKeys: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          return listKeys(checkpointOf(ctx), principalOf(ctx));
        },
      },
      revokeKey: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          const revoked = await revokeKey(checkpointOf(ctx), principalOf(ctx), keyIdOf(ctx.params));
          keys().forget(revoked.id);
          return revoked;
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
    created() {
      const broker = this.broker;
      verifier = new KeyVerifier((id) => broker.call("checkpoint.findKey", { id }), config.auth);
    },
    started() {
      // moleculer-web's server exists once its own started() ran (mixins start first).
      (this as unknown as { server: Server }).server.on("clientError", answerClientError);
      announceAuth(this.broker, this.logger, config.auth);
      resources.health.register("api");
    },
    stopped() {
      resources.health.unregister("api");
    },
  };
}

/** The admin's view of who they are, for the keys routes (their scope was checked by the route). */
function principalOf(ctx: Context<unknown, RestMeta>) {
  return { tenant: tenantOf(ctx), scopes: ["admin" as const], keyId: ctx.meta.keyId ?? "" };
}

/**
 * Says at start how requests are authenticated: loudly when they are not, and when nothing could ever
 * authenticate (authentication on, no CLAWFLEET_ADMIN_KEY, no key stored). The secret is never logged.
 */
function announceAuth(broker: ServiceBroker, logger: LoggerInstance, auth: { enabled: boolean; adminKey: string | undefined }): void {
  if (!auth.enabled) {
    logger.warn(
      { event: "auth.off" },
      "!!! THE REST API IS UNAUTHENTICATED (CLAWFLEET_AUTH=off): every request acts for tenant \"default\" with every scope. " +
        "Set CLAWFLEET_AUTH=on (and CLAWFLEET_ADMIN_KEY) before exposing this port. !!!",
    );
    return;
  }
  if (auth.adminKey !== undefined) return;
  void broker
    .waitForServices("checkpoint", 60_000)
    .then(() => broker.call<unknown[], Record<string, never>>("checkpoint.listKeys", {}))
    .then((stored) => {
      if (stored.length === 0) {
        logger.warn(
          { event: "auth.no_keys" },
          "authentication is on, no API key exists and CLAWFLEET_ADMIN_KEY is not set: every /v1 request will answer 401. " +
            "Set CLAWFLEET_ADMIN_KEY and create keys with POST /v1/keys.",
        );
      }
    })
    // Only a start-up hint: a checkpoint role that is slow to come up must not fail the api.
    .catch(() => undefined);
}
