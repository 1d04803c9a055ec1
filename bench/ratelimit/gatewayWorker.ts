/**
 * One rate-gateway process for the two-gateway benchmark (gateways.ts): the real
 * `RateGateway` (limiter, Redis buckets under a shared prefix, the provider
 * client) with no configured limits, so it runs on the limits the provider's
 * headers name, as learned by it or by the other gateway. `concurrency` callers
 * send model calls of varied sizes until SIGTERM (or SIGKILL), each refused call
 * retried after its `retryAfter`, as the planner does.
 *
 *   node --require tsx/cjs bench/ratelimit/gatewayWorker.ts '<json args>'
 */
import { Redis } from "ioredis";
import { loadConfig } from "../../src/config";
import type { CompleteRequest } from "../../src/contracts";
import { RateLimitedError } from "../../src/errors";
import { RateGateway } from "../../src/llm/rateGateway";
import type { Logger } from "../../src/logging";
import { RedisBuckets } from "../../src/ratelimit";
import { Metrics } from "../../src/telemetry/metrics";

interface Args {
  name: string;
  providerUrl: string;
  redisUrl: string;
  prefix: string;
  windowMs: number;
  concurrency: number;
  seed: number;
}

const args = JSON.parse(process.argv[2] ?? "{}") as Args;
const MODEL = "claude-sonnet-5-5";

/** Deterministic per worker, different between workers. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0), x / 2 ** 32);
}

async function main(): Promise<void> {
  const config = loadConfig({ ANTHROPIC_BASE_URL: args.providerUrl, CLAWFLEET_RATE_LIMIT_WINDOW_MS: String(args.windowMs), CLAWFLEET_RATE_LIMIT_MAX_WAIT_MS: "2000" });
  const redis = new Redis(args.redisUrl);
  const quiet = { warn: () => undefined } as unknown as Logger;
  const gateway = await RateGateway.open({ config, buckets: new RedisBuckets(redis, { prefix: args.prefix }), metrics: new Metrics({}), pingModel: MODEL, logger: quiet });
  const random = rng(args.seed);
  let stopping = false;
  process.on("SIGTERM", () => (stopping = true));
  let n = 0;
  const counts = { ok: 0, refused: 0, failed: 0 };
  await Promise.all(
    Array.from({ length: args.concurrency }, async () => {
      while (!stopping) {
        // 50 to 900 input tokens; output asked 100 to 400, produced up to ~250 (the sim quotes the prompt back).
        const req: CompleteRequest = {
          taskId: `${args.name}-${n++}`,
          agent: "bench",
          promptVersion: "v1",
          step: 1,
          tier: "reason",
          model: MODEL,
          maxTokens: 100 + Math.floor(random() * 300),
          priority: "normal",
          system: "You are a benchmark.",
          messages: [{ role: "user", content: "w".repeat(150 + Math.floor(random() * 3450)) }],
          tools: [],
        };
        try {
          await gateway.complete(req);
          counts.ok++;
        } catch (err) {
          if (err instanceof RateLimitedError) {
            counts.refused++;
            const after = Number((err.data as { retryAfter?: unknown } | undefined)?.retryAfter ?? 1);
            await new Promise((r) => setTimeout(r, after * 1000));
          } else {
            counts.failed++;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      }
    }),
  );
  process.stdout.write(`${JSON.stringify({ name: args.name, ...counts })}\n`);
  await gateway.close();
  redis.disconnect();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
