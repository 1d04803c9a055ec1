/**
 * The rate-gateway role's work (invariant 5, docs/invariants.md): every model call of the cluster is
 * admitted through the token buckets (waiting by priority, or refused with a
 * retryable RateLimitedError carrying `retryAfter`), sent to the provider, and
 * settled to its actual usage and the provider's rate-limit headers.
 */
import type { Config } from "../config";
import { limitsReport, RateLimiter, type Buckets } from "../ratelimit";
import { LlmTelemetry } from "../telemetry/llmTelemetry";
import type { Metrics } from "../telemetry/metrics";
import type { ProviderResponse } from "./anthropicGateway";
import { PriceTable } from "./pricing";
import type { DeltaPublisher } from "./streaming";
import { openProvider, ProviderHealth, type Provider, type ProviderLogger } from "./provider";
import type { CompleteRequest, CompleteResponse, LimitsView } from "../contracts";

export interface RateGatewayOptions {
  config: Pick<Config, "anthropicApiKey" | "anthropicBaseUrl" | "sim" | "rateLimits" | "prices">;
  /** The buckets of this process's mode (Redis in a cluster, in-process embedded). */
  buckets: Buckets;
  /** The `chat` span, rate-limit waits and the LLM series are recorded here, where the provider is called. */
  metrics: Metrics;
  /** The model the connectivity check names. */
  pingModel: string;
  logger: ProviderLogger;
}

export class RateGateway {
  private constructor(
    private readonly provider: Provider,
    private readonly limiter: RateLimiter,
    private readonly telemetry: LlmTelemetry,
    private readonly providerHealth: ProviderHealth,
    private readonly report: (models: Iterable<string>) => Promise<LimitsView>,
  ) {}

  /** Chooses the provider and checks that it answers (a failed check is logged, not thrown: readiness reports it). */
  static async open(opts: RateGatewayOptions): Promise<RateGateway> {
    const { config, logger } = opts;
    const telemetry = new LlmTelemetry(opts.metrics, new PriceTable(config.prices));
    const limiter = new RateLimiter(opts.buckets, { ...config.rateLimits, logger });
    const provider = await openProvider(config, logger);
    const health = new ProviderHealth(() => provider.gateway.ping(opts.pingModel), logger);
    await health.start();
    return new RateGateway(provider, limiter, telemetry, health, (models) => limitsReport(opts.buckets, config.rateLimits, models));
  }

  /**
   * `signal`: the caller cancelled; the provider request in flight is aborted (see src/transport/cancel.ts).
   * `publish`: told the text deltas of a streamed call (`req.stream`, src/llm/streaming.ts).
   */
  async complete(req: CompleteRequest, signal?: AbortSignal, publish?: DeltaPublisher): Promise<CompleteResponse> {
    const permit = await this.telemetry.admission(req, () => this.limiter.acquire(req, signal));
    let answer: ProviderResponse;
    try {
      answer = await this.telemetry.call(req, () => this.provider.gateway.complete(req, signal, publish));
    } catch (err) {
      await permit.failed(err);
      throw err;
    }
    // Off the response path: a settle only corrects the buckets, and it logs rather than throws.
    void permit.settle(answer.usage, answer.rateLimit);
    this.providerHealth.answered();
    const { rateLimit: _rateLimit, ...response } = answer;
    return response;
  }

  /** `GET /v1/limits`: the configured and learned models and `models`, with the whole cluster's usage (limitsReport.ts). */
  limits(models: Iterable<string>): Promise<LimitsView> {
    return this.report(models);
  }

  /** Readiness: whether the provider answered recently. */
  health(): { ok: boolean; reason?: string } {
    return this.providerHealth.check();
  }

  /** Calls still waiting for the rate limit are refused at once (retryable): their planners ask another gateway. */
  async close(): Promise<void> {
    this.limiter.close();
    this.providerHealth.stop();
    await this.provider.close();
  }
}
