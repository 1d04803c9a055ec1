/**
 * `rate-gateway`: the only holder of the provider key and the only caller of the
 * provider. Without ANTHROPIC_API_KEY it serves from the simulated model (in
 * process, or the one ANTHROPIC_BASE_URL points at) and says so in a banner.
 */
import type { Context, ServiceSchema } from "moleculer";
import { TEXT_DELTA_EVENT, type CompleteResponse, type TextDeltaEvent } from "../src/contracts";
import { RateGateway } from "../src/llm/rateGateway";
import { tierModels } from "../src/ratelimit";
import type { Resources } from "../src/node/resources";
import { Gateway, LimitsParamsSchema, parseCallParams, parseParams } from "../src/contracts";
import { CallCancelledError } from "../src/errors";
import { CALL_CANCEL_EVENT, CancelRegistry } from "../src/transport/cancel";
import type { Metrics } from "../src/telemetry/metrics";

export function rateGatewayService(resources: Resources, metrics: Metrics): ServiceSchema {
  const { config } = resources;
  const pingModel = Object.values(resources.agents.list()[0]?.tiers ?? {})[0]?.model ?? "claude-haiku-4-5";
  let gateway: RateGateway | undefined;
  // Model calls their planner gave up on (it is shutting down): their provider requests are aborted.
  const cancels = new CancelRegistry();

  return {
    name: "rate-gateway",
    actions: {
      complete: {
        async handler(ctx: Context): Promise<CompleteResponse> {
          if (!gateway) throw new Error("rate-gateway is not started");
          const req = parseCallParams(Gateway.complete, ctx.params, "rate-gateway.complete");
          const call = cancels.open((ctx.meta as { callId?: unknown }).callId);
          // A streamed call's text deltas go to every api replica (a lost one only costs a live preview).
          const publish = req.stream ? (delta: TextDeltaEvent) => void Promise.resolve(this.broker.broadcast(TEXT_DELTA_EVENT, delta)).catch(() => undefined) : undefined;
          try {
            return await gateway.complete(req, call.signal, publish);
          } finally {
            call.done();
          }
        },
      },
      // GET /v1/limits: the caller's agents' models and this node's, with the usage every gateway recorded.
      limits: {
        async handler(ctx: Context) {
          if (!gateway) throw new Error("rate-gateway is not started");
          const { models } = parseParams(LimitsParamsSchema, ctx.params, "rate-gateway.limits");
          return gateway.limits([...models, ...tierModels(resources.agents.list())]);
        },
      },
    },
    events: {
      [CALL_CANCEL_EVENT](ctx: Context) {
        cancels.cancel(ctx.params, new CallCancelledError("the caller cancelled the model call"));
      },
    },
    async started() {
      const opened = await RateGateway.open({ config, buckets: resources.backends.createBuckets(), metrics, pingModel, logger: this.logger });
      gateway = opened;
      resources.health.register("rate-gateway", () => opened.health());
    },
    async stopped() {
      resources.health.unregister("rate-gateway");
      await gateway?.close();
    },
  };
}
