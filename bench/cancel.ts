/**
 * How fast a cancel stops a model call in flight. A distributed cluster of real
 * processes over NATS, Redis and Postgres (checkpoint, rate-gateway, executor,
 * planner and api+intake+metrics each in its own process, as in production)
 * against a `clawfleet sim` process whose calls take 10 s. For each sample a task
 * is submitted, and once its first model request has reached the model (plus a
 * random 50-500 ms) it is cancelled; two figures per cancel:
 *
 *   answer:       POST /v1/tasks/{id}/cancel sent → its 202 received
 *   model abort:  the same request sent → the sim saw the model request's connection close
 *                 (api → intake → checkpoint commit → planner abort → rate-gateway → SDK abort)
 *
 *   npx tsx bench/cancel.ts [--cancels 240] [--concurrency 8] [--json out.json]
 *
 * Needs PostgreSQL, Redis and NATS on 127.0.0.1 (as the tests). Every clock read is this machine's.
 */
import fs from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { Cluster, simRequests, sleep, startSim, stopProc } from "../testkit/crash";
import { EXECUTOR_ROLES, ROOT } from "../testkit/cluster";
import { createScratch, NATS_TEST_URL, REDIS_TEST_URL } from "../testkit/scratch";

const { values: args } = parseArgs({
  options: { cancels: { type: "string", default: "240" }, concurrency: { type: "string", default: "8" }, json: { type: "string" } },
});
const CANCELS = Number(args.cancels);
const CONCURRENCY = Number(args.concurrency);
const MODEL_MS = 10_000;

interface Sample {
  id: string;
  sentAt: number;
  answeredAt: number;
  status: number;
}

interface SimRequest {
  user_id: string | null;
  at: number;
  aborted_at?: number;
}

/** Nearest rank, of sorted numbers. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function summary(ms: number[]): { n: number; p50: number; p99: number; max: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN };
}

async function main(): Promise<void> {
  const scratch = await createScratch("benchcancel");
  const sim = await startSim({ latencyMs: MODEL_MS });
  const cluster = new Cluster({
    namespace: scratch.namespace,
    databaseUrl: scratch.db.url,
    redisUrl: REDIS_TEST_URL,
    natsUrl: NATS_TEST_URL,
    simUrl: sim.url,
    env: {
      CLAWFLEET_AUTH: "off",
      LOG_LEVEL: "warn",
      CLAWFLEET_PROMPTS_DIR: `${ROOT}/test/fixtures/cancel/prompts`,
      CLAWFLEET_USER_SERVICES: `${ROOT}/test/fixtures/cancel/services/*.service.ts`,
    },
  });
  try {
    await cluster.start("checkpoint", "checkpoint", {}, true, 300_000);
    const [api] = await Promise.all([
      cluster.start("api", "api,intake,metrics", {}, true, 300_000),
      cluster.start("rate-gateway", "rate-gateway", {}, true, 300_000),
      cluster.start("executor-1", EXECUTOR_ROLES, {}, true, 300_000),
      cluster.start("planner-1", "planner", { CLAWFLEET_PLANNER_SLOTS: String(CONCURRENCY * 2) }, true, 300_000),
    ]);
    const base = `http://127.0.0.1:${api.port}`;

    // One watcher of the model's request log: when each task's first request arrived.
    const arrived = new Map<string, number>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const r of await simRequests(sim.url)) if (r.user_id !== null && !arrived.has(r.user_id)) arrived.set(r.user_id, r.at);
        await sleep(10);
      }
    })();

    const samples: Sample[] = [];
    let started = 0;
    const worker = async () => {
      while (started < CANCELS) {
        started++;
        const submitted = await fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ agent: "slow-worker", input: "bench" }) });
        const { id } = (await submitted.json()) as { id: string };
        while (!arrived.has(id)) await sleep(5);
        await sleep(Math.max(0, (arrived.get(id) ?? 0) + 50 + Math.random() * 450 - Date.now()));
        const sentAt = Date.now();
        const r = await fetch(`${base}/v1/tasks/${id}/cancel`, { method: "POST" });
        await r.arrayBuffer();
        samples.push({ id, sentAt, answeredAt: Date.now(), status: r.status });
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // Give the last aborts time to reach the model.
    await sleep(2_000);
    watching = false;
    await watcher;

    const requests = new Map(((await simRequests(sim.url)) as SimRequest[]).filter((r) => r.user_id !== null).map((r) => [r.user_id as string, r]));
    const answers = samples.map((s) => s.answeredAt - s.sentAt);
    const aborts = samples.flatMap((s) => {
      const abortedAt = requests.get(s.id)?.aborted_at;
      return abortedAt === undefined ? [] : [abortedAt - s.sentAt];
    });
    const result = {
      cancels: samples.length,
      refused: samples.filter((s) => s.status !== 202).length,
      notAborted: samples.length - aborts.length,
      answer_ms: summary(answers),
      model_abort_ms: summary(aborts),
      wall_s: (Date.now() - t0) / 1000,
      concurrency: CONCURRENCY,
      load_average_1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
      cpus: os.cpus().length,
    };
    process.stdout.write(
      `cancel bench: ${result.cancels} cancels (${result.refused} refused, ${result.notAborted} model calls not seen aborted), ${CONCURRENCY} at a time, ` +
        `load average ${result.load_average_1m} on ${result.cpus} CPUs\n` +
        `  answer (cancel sent → 202):            p50 ${result.answer_ms.p50} ms   p99 ${result.answer_ms.p99} ms   max ${result.answer_ms.max} ms\n` +
        `  model abort (cancel sent → sim saw it): p50 ${result.model_abort_ms.p50} ms   p99 ${result.model_abort_ms.p99} ms   max ${result.model_abort_ms.max} ms\n`,
    );
    if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 2));
  } finally {
    await cluster.stopAll();
    await stopProc(sim);
    await scratch.remove();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
