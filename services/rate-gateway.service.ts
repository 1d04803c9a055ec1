/**
 * `rate-gateway`: the only holder of the provider key and the only caller of the
 * provider. Without ANTHROPIC_API_KEY it serves from the simulated model (in
 * process, or the one ANTHROPIC_BASE_URL points at) and says so in a banner.
 */
import type { Context, ServiceSchema } from "moleculer";
import { AnthropicGateway, type ProviderResponse } from "../src/llm/anthropicGateway";
import { createRateLimiter, type RateLimiter } from "../src/ratelimit";
import type { Resources } from "../src/runtime/resources";
import { Gateway, parseParams } from "../src/rpc";
import { startSimServer, type SimServer } from "../src/sim";
import { messageOf } from "../src/errors";
import type { CompleteResponse } from "../src/llm/types";
import { PriceTable } from "../src/llm/pricing";
import { LlmTelemetry } from "../src/telemetry/llmTelemetry";
import type { Metrics } from "../src/telemetry/metrics";

/** The provider counts as reachable this long after its last successful answer. */
const PROVIDER_FRESH_MS = 60_000;
const PING_INTERVAL_MS = 15_000;

export function rateGatewayService(resources: Resources, metrics: Metrics): ServiceSchema {
  const { config } = resources;
  // The `chat` span, rate-limit waits and the LLM series, recorded here where the provider is called.
  const telemetry = new LlmTelemetry(metrics, new PriceTable(config.prices));
  let gateway: AnthropicGateway | undefined;
  let limiter: RateLimiter | undefined;
  let sim: SimServer | undefined;
  let lastProviderOk = 0;
  let lastProviderError = "no connectivity check yet";
  let pinger: NodeJS.Timeout | undefined;
  const pingModel = Object.values(resources.agents.list()[0]?.tiers ?? {})[0]?.model ?? "claude-haiku-4-5";

  return {
    name: "rate-gateway",
    actions: {
      complete: {
        async handler(ctx: Context): Promise<CompleteResponse> {
          if (!gateway || !limiter) throw new Error("rate-gateway is not started");
          const req = parseParams(Gateway.complete, ctx.params, "rate-gateway.complete");
          // Invariant 5: reserve (waiting by priority, or RateLimitedError with retryAfter), call, settle to usage.
          const [g, l] = [gateway, limiter];
          const permit = await telemetry.admission(req, () => l.acquire(req));
          let r: ProviderResponse;
          try {
            r = await telemetry.call(req, () => g.complete(req));
          } catch (err) {
            await permit.failed(err);
            throw err;
          }
          // Off the response path: a settle only corrects the buckets, and it logs rather than throws.
          void permit.settle(r.usage, r.rateLimit);
          lastProviderOk = Date.now();
          const { rateLimit: _rl, ...response } = r;
          return response;
        },
      },
    },
    async started() {
      let baseURL = config.anthropicBaseUrl;
      let apiKey = config.anthropicApiKey;
      if (apiKey === undefined) {
        if (baseURL === undefined) {
          sim = await startSimServer({ port: 0, latencyMs: config.sim.latencyMs, failureRate: config.sim.failureRate });
          baseURL = sim.url;
        }
        apiKey = "sim-no-key";
        this.logger.warn(
          {
            event: "provider.simulated",
            baseURL,
          },
          `\n${"=".repeat(72)}\n  ANTHROPIC_API_KEY is not set: serving from Clawfleet's SIMULATED model at ${baseURL}\n  Answers are scripted per agent; no real LLM is called. Set ANTHROPIC_API_KEY for the real one.\n${"=".repeat(72)}`,
        );
      }
      // No retries inside the gateway: each provider request must pass the buckets; the planner retries.
      gateway = new AnthropicGateway({ apiKey, baseURL, maxRetries: 0 });
      limiter = createRateLimiter(config, () => resources.redis(), this.logger);
      const g = gateway;
      const ping = () =>
        g.ping(pingModel).then(
          () => {
            lastProviderOk = Date.now();
          },
          (err: unknown) => {
            lastProviderError = messageOf(err);
            this.logger.warn({ event: "provider.ping_failed", err: lastProviderError }, "provider connectivity check failed");
          },
        );
      await ping();
      pinger = setInterval(() => void ping(), PING_INTERVAL_MS);
      pinger.unref();
      resources.health.register("rate-gateway", () =>
        Date.now() - lastProviderOk < PROVIDER_FRESH_MS
          ? { ok: true }
          : { ok: false, reason: `provider not answering: ${lastProviderError}` },
      );
    },
    async stopped() {
      resources.health.unregister("rate-gateway");
      if (pinger) clearInterval(pinger);
      if (sim) await sim.close();
    },
  };
}
