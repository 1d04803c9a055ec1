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
import type { Metrics } from "../src/telemetry/metrics";

export function rateGatewayService(resources: Resources, metrics: Metrics): ServiceSchema {
  const { config } = resources;
  const pingModel = Object.values(resources.agents.list()[0]?.tiers ?? {})[0]?.model ?? "claude-haiku-4-5";
  let gateway: RateGateway | undefined;

  return {
    name: "rate-gateway",
    actions: {
      complete: {
        async handler(ctx: Context): Promise<CompleteResponse> {
          if (!gateway) throw new Error("rate-gateway is not started");
          return gateway.complete(parseParams(Gateway.complete, ctx.params, "rate-gateway.complete"));
        },
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
