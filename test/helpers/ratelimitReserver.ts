/**
 * A child process for the rate-limit contract suite: hammers one Redis bucket
 * scope with `concurrency` reservers from `startAt` (epoch ms) for `durationMs`,
 * then prints one JSON line: the start time (Redis clock, ms) of every admitted
 * call. Run with `node --require tsx/cjs test/helpers/ratelimitReserver.ts '<json args>'`.
 */
import { Redis } from "ioredis";
import { RedisBuckets } from "../../src/ratelimit/redisBuckets";
import type { BucketSpec, Triple } from "../../src/ratelimit/limits";

interface Args {
  redisUrl: string;
  prefix: string;
  scope: string;
  specs: Triple<BucketSpec>;
  need: Triple<number>;
  horizonMs: number;
  startAt: number;
  durationMs: number;
  concurrency: number;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? "{}") as Args;
  const redis = new Redis(args.redisUrl);
  const buckets = new RedisBuckets(redis, { prefix: args.prefix });
  const starts: number[] = [];
  await new Promise((r) => setTimeout(r, Math.max(0, args.startAt - Date.now())));
  const end = Date.now() + args.durationMs;
  await Promise.all(
    Array.from({ length: args.concurrency }, async () => {
      while (Date.now() < end) {
        const out = await buckets.reserve(args.scope, args.specs, args.need, args.horizonMs);
        if (out.admitted) starts.push(out.nowMs + out.waitMs);
        else await new Promise((r) => setTimeout(r, Math.max(0, out.waitMs - args.horizonMs)));
      }
    }),
  );
  process.stdout.write(`${JSON.stringify({ starts })}\n`);
  await redis.quit();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
