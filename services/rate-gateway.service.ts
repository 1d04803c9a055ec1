/**
 * `rate-gateway`: the only holder of the provider key and the only caller of the
 * provider. Without ANTHROPIC_API_KEY it serves from the simulated model (in
 * process, or the one ANTHROPIC_BASE_URL points at) and says so in a banner.
 */
import type { Context, ServiceSchema } from "moleculer";
import type { CompleteResponse } from "../src/contracts";
import { RateGateway } from "../src/llm/rateGateway";
import type { Resources } from "../src/node/resources";
import { Gateway, parseParams } from "../src/contracts";
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
          const req = parseParams(Gateway.complete, ctx.params, "rate-gateway.complete");
          const call = cancels.open((ctx.meta as { callId?: unknown }).callId);
          try {
            return await gateway.complete(req, call.signal);
          } finally {
            call.done();
          }
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
