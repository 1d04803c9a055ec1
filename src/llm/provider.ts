/**
 * Which provider the rate-gateway calls, and whether it answers.
 *
 * With ANTHROPIC_API_KEY: the real API (at ANTHROPIC_BASE_URL when set). Without:
 * the simulated model, the one ANTHROPIC_BASE_URL points at or one started in this
 * process, announced in a banner so nobody takes its answers for a model's.
 */
import type { Config } from "../config";
import { messageOf } from "../errors";
import { loadSimPolicies, startSimServer } from "../sim";
import { redactUrl, type Logger } from "../logging";
import { AnthropicGateway } from "./anthropicGateway";

export type ProviderLogger = Pick<Logger, "warn">;

export interface Provider {
  gateway: AnthropicGateway;
  /** Stops the in-process simulated model, if one was started. */
  close(): Promise<void>;
}

/** Key given to the SDK when the simulated model answers: it asks for none, the SDK insists on one. */
const SIM_API_KEY = "sim-no-key";

function simulatedBanner(baseURL: string): string {
  const rule = "=".repeat(72);
  return (
    `\n${rule}\n  ANTHROPIC_API_KEY is not set: serving from Clawfleet's SIMULATED model at ${baseURL}\n` +
    `  Answers are scripted per agent (generic for agents without a script); no real LLM is called. Set ANTHROPIC_API_KEY for the real one.\n${rule}`
  );
}

export async function openProvider(config: Pick<Config, "anthropicApiKey" | "anthropicBaseUrl" | "sim">, logger: ProviderLogger): Promise<Provider> {
  let baseURL = config.anthropicBaseUrl;
  let apiKey = config.anthropicApiKey;
  let close = async (): Promise<void> => undefined;
  if (apiKey === undefined) {
    if (baseURL === undefined) {
      const policies = await loadSimPolicies(config.sim.policies);
      const sim = await startSimServer({ port: 0, latencyMs: config.sim.latencyMs, failureRate: config.sim.failureRate, policies });
      baseURL = sim.url;
      close = () => sim.close();
    }
    apiKey = SIM_API_KEY;
    // ANTHROPIC_BASE_URL may carry credentials (`http://user:pass@host`): the log line names the address only.
    const shown = redactUrl(baseURL);
    logger.warn({ event: "provider.simulated", baseURL: shown }, simulatedBanner(shown));
  }
  // No retries inside the gateway: each provider request must pass the buckets; the planner retries.
  return { gateway: new AnthropicGateway({ apiKey, baseURL, maxRetries: 0 }), close };
}

export interface ProviderHealthOptions {
  /** Time between connectivity checks. @default 15000 */
  intervalMs?: number;
  /** The provider counts as reachable this long after its last successful answer. @default 60000 */
  freshMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * Whether the provider answered recently: a connectivity check (a token count, free)
 * at start and every `intervalMs`, and every successful model call, count as answers.
 * Read by the rate-gateway's readiness check.
 */
export class ProviderHealth {
  private readonly intervalMs: number;
  private readonly freshMs: number;
  private readonly now: () => number;
  private lastOk = 0;
  private lastError = "no connectivity check yet";
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ping: () => Promise<void>,
    private readonly logger: ProviderLogger,
    opts: ProviderHealthOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 15_000;
    this.freshMs = opts.freshMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** Checks once (waited for), then every `intervalMs` until `stop()`. */
  async start(): Promise<void> {
    await this.checkNow();
    this.timer = setInterval(() => void this.checkNow(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The provider just answered a model call. */
  answered(): void {
    this.lastOk = this.now();
  }

  /** For readiness: ok while the last answer is fresh, else why not. */
  check(): { ok: boolean; reason?: string } {
    return this.now() - this.lastOk < this.freshMs ? { ok: true } : { ok: false, reason: `provider not answering: ${this.lastError}` };
  }

  private async checkNow(): Promise<void> {
    try {
      await this.ping();
      this.answered();
    } catch (err) {
      this.lastError = messageOf(err);
      this.logger.warn({ event: "provider.ping_failed", err: this.lastError }, "provider connectivity check failed");
    }
  }
}
