/**
 * `api`: the REST gateway (moleculer-web). Thin: it authenticates the request
 * (src/auth), calls `intake` or `checkpoint` for the key's tenant, and shapes
 * the answer. Every error, including the body parser's and the router's,
 * leaves as `{"error": {type, message, details?}}`.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Context, LoggerInstance, ServiceBroker, ServiceSchema } from "moleculer";
import type ApiGatewayMixin from "moleculer-web";
import type { Registry } from "prom-client";
import { answerClientError, keepConnections, refuseNonJson, type KeptConnections, requestHints, sendError, type RequestHints } from "../src/api/http";
import { isClusterWide, scopeOf, v1Aliases } from "../src/api/routes";
import { cancelBodyOf } from "../src/cancel";
import { DASHBOARD_PATH, DashboardAssets, redirectToDashboard } from "../src/dashboard";
import type { Cancelled, CancelTaskParams } from "../src/contracts";
import { readTaskList } from "../src/api/taskList";
import { readSteps, readTask, taskIdOf } from "../src/api/tasks";
import { readQueues } from "../src/api/queues";
import { tierModels } from "../src/ratelimit";
import { StreamSubscription } from "../src/api/streamSubscription";
import { openTaskStream, parseCursor, StreamHub, TaskEventCursor, type StreamReads } from "../src/api/taskStream";
import { createKey, KeyVerifier, listKeys, requireOperatorTenant, requireScope, revokeKey } from "../src/auth";
import { KeyRefSchema, TEXT_DELTA_EVENT, TextDeltaEventSchema } from "../src/contracts";
import { openApiDocument, type OpenApiDocument } from "../src/contracts/openapi";
import { messageOf, RouteNotFoundError, TaskNotFoundError, UnauthenticatedError } from "../src/errors";
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

/** The agent a path names; a name no agent can have is looked up all the same (and is a 404). */
const agentNameOf = (params: RestParams): string => (params.params?.name ?? "").slice(0, 200);

const keyIdOf = (params: RestParams): string => KeyRefSchema.safeParse(params.params?.id).data ?? "";

function answer(ctx: Context<unknown, RestMeta>, probe: ProbeAnswer): unknown {
  ctx.meta.$statusCode = probe.status;
  return probe.body;
}

export function apiService(resources: Resources, registry: Registry): ServiceSchema {
  const { config } = resources;
  let verifier: KeyVerifier | undefined;
  /** The server's kept-alive connections, drained when the API stops. */
  let connections: KeptConnections | undefined;
  let openApi: OpenApiDocument | undefined;
  // The task events are listened to only while a stream is open here (src/api/streamSubscription.ts).
  let subscription: StreamSubscription | undefined;
  const hub = new StreamHub({ watching: () => subscription?.watching(), idle: () => subscription?.idle() });
  const dashboard = new DashboardAssets();
  const serveDashboard = (req: IncomingMessage & { $params?: RestParams }, res: ServerResponse) => dashboard.serve(req, res, req.$params?.params?.file);
  let reads: StreamReads | undefined;
  const streamReads = () => {
    if (!reads) throw new Error("api service is not created");
    return reads;
  };
  const keys = () => {
    if (!verifier) throw new Error("api service is not created");
    return verifier;
  };
  function onError(this: { logger: LoggerInstance }, req: IncomingMessage, resp: ServerResponse, err: unknown): void {
    sendError(this.logger, req, resp, err);
  }
  return {
    name: "api",
    // Loaded here, by the process that runs the api, not by every role's process that imports this module.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mixins: [require("moleculer-web") as typeof ApiGatewayMixin],
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
            if (isClusterWide(alias.action ?? "")) requireOperatorTenant(principal);
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
          // The operator's dashboard (src/dashboard): static files that call the /v1 routes with the operator's key.
          path: DASHBOARD_PATH,
          mappingPolicy: "restrict",
          mergeParams: false,
          aliases: { "GET /": serveDashboard, "GET /:file": serveDashboard },
          onError,
        },
        {
          path: "/",
          mappingPolicy: "restrict",
          aliases: {
            "GET /": (_req: IncomingMessage, res: ServerResponse) => redirectToDashboard(res),
            "GET /metrics": "api.metrics",
            "GET /openapi.json": "api.openapi",
          },
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
      listTasks: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          return readTaskList(checkpointOf(ctx), ctx.params.query, tenantOf(ctx));
        },
      },
      getTask: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          return readTask(checkpointOf(ctx), taskIdOf(ctx.params), tenantOf(ctx));
        },
      },
      taskEvents: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          const id = taskIdOf(ctx.params);
          const tenant = tenantOf(ctx);
          const reads = streamReads();
          if (!(await reads.getTask(id, tenant))) throw new TaskNotFoundError(`no task ${id}`, { id });
          const cursor = parseCursor(ctx.meta.lastEventId ?? ctx.params.query?.last_event_id);
          // A cursor no event could have carried replays from the start, after a `reset`.
          const from = cursor === "invalid" ? Number.MAX_SAFE_INTEGER : cursor;
          ctx.meta.$responseType = "text/event-stream; charset=utf-8";
          ctx.meta.$responseHeaders = { "Cache-Control": "no-cache", "X-Accel-Buffering": "no" };
          return openTaskStream(new TaskEventCursor(reads, id, tenant, from), hub, id, {
            onError: (err) => this.logger.warn({ event: "stream.read_failed", taskId: id, err: messageOf(err) }, "event stream ended early; the client resumes from its last id"),
          });
        },
      },
      getSteps: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          return readSteps(checkpointOf(ctx), taskIdOf(ctx.params), tenantOf(ctx), ctx.params.query);
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
      cancelTask: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          const { reason } = cancelBodyOf(ctx.params.body);
          const r = await ctx.call<Cancelled, CancelTaskParams>("intake.cancelTask", {
            taskId: taskIdOf(ctx.params),
            tenant: tenantOf(ctx),
            by: ctx.meta.keyId ?? "anonymous",
            ...(reason !== undefined ? { reason } : {}),
          });
          ctx.meta.$statusCode = 202;
          return r;
        },
      },
      // Approval gates (src/approvals/control.ts): the calls the tenant's tasks wait on, and one decision on one;
      // `by` is the key's id.
      listApprovals: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          return ctx.call("intake.approvals", { query: ctx.params.query ?? {}, tenant: tenantOf(ctx) });
        },
      },
      decideApproval: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          return ctx.call("intake.decideApproval", { taskId: taskIdOf(ctx.params), body: ctx.params.body, by: ctx.meta.keyId ?? "anonymous", tenant: tenantOf(ctx) });
        },
      },
      // Agents, their versions and canaries are the cluster's, like the switches: any tenant's key reads them,
      // and an `operate` key starts or aborts a canary; `by` is its key's id (src/rollout/control.ts).
      listAgents: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          tenantOf(ctx);
          return ctx.call("intake.listAgents", {});
        },
      },
      getAgent: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          tenantOf(ctx);
          return ctx.call("intake.getAgent", { name: agentNameOf(ctx.params) });
        },
      },
      startCanary: {
        visibility: "published",
        async handler(ctx: Context<RestParams, RestMeta>) {
          tenantOf(ctx);
          const view = await ctx.call("intake.startCanary", { name: agentNameOf(ctx.params), body: ctx.params.body, by: ctx.meta.keyId ?? "anonymous" });
          ctx.meta.$statusCode = 201;
          return view;
        },
      },
      abortCanary: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          tenantOf(ctx);
          return ctx.call("intake.abortCanary", { name: agentNameOf(ctx.params), by: ctx.meta.keyId ?? "anonymous" });
        },
      },
      // Kill switches are the cluster's, not a tenant's: an `operate` key of any tenant sets them (README, "Kill switches").
      listSwitches: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          tenantOf(ctx);
          return ctx.call("intake.switches", {});
        },
      },
      setSwitch: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          // Only an authenticated request gets here (tenantOf throws otherwise); `by` is its key's id.
          tenantOf(ctx);
          const { kind = "", name = "" } = ctx.params.params ?? {};
          return ctx.call("intake.setSwitch", { kind, name, body: ctx.params.body, by: ctx.meta.keyId ?? "anonymous" });
        },
      },
      // The operator's dashboard (README, "Queues and rate limits"): every tenant's figures, so cluster-wide routes.
      getQueues: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          tenantOf(ctx);
          return readQueues(resources.backends, checkpointOf(ctx));
        },
      },
      getLimits: {
        visibility: "published",
        handler(ctx: Context<RestParams, RestMeta>) {
          tenantOf(ctx);
          // The gateway holds the buckets (shared through Redis in a cluster); this node adds its agents' models.
          return ctx.call("rate-gateway.limits", { models: tierModels(resources.agents.list()) });
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
      openapi: {
        visibility: "published",
        handler() {
          // Built from the schemas that validate the requests; unauthenticated, like /health: it holds no data.
          openApi ??= openApiDocument();
          return openApi;
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
    events: {
      // Broadcast by whichever process reads a streamed model call; only the streams of its task see it. Heard
      // all the time, unlike the task events: a delta is never read again, so one missed while a new
      // subscription was being announced would be lost from the preview.
      [TEXT_DELTA_EVENT](ctx: Context) {
        const delta = TextDeltaEventSchema.safeParse(ctx.params);
        if (delta.success) hub.publish(delta.data);
        else this.logger.warn({ event: "stream.delta_malformed", err: delta.error.message }, "dropped a malformed text delta");
      },
    },
    created() {
      const broker = this.broker;
      subscription = new StreamSubscription(broker, hub, {
        onError: (err, action) => this.logger.warn({ event: "stream.subscription_failed", action, err: messageOf(err) }, "could not change the api's subscription to the task events; its streams still poll"),
      });
      // Not the request's context: a stream outlives the action call that opened it.
      reads = new RemoteTaskStore((action, params) => broker.call(action, params, { timeout: 10_000 }));
      verifier = new KeyVerifier((id) => broker.call("checkpoint.findKey", { id }), config.auth);
    },
    started() {
      // moleculer-web's server exists once its own started() ran (mixins start first).
      const server = (this as unknown as { server: Server }).server;
      server.on("clientError", answerClientError);
      connections = keepConnections(server);
      announceAuth(this.broker, this.logger, config.auth);
      resources.health.register("api");
    },
    stopped() {
      // Runs before moleculer-web's own stopped(), which closes the server: kept-alive connections do not hold it.
      connections?.drain();
      subscription?.stop();
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
