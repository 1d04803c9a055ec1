/**
 * Overhead of tracing + metrics on the 50-task distributed scenario of
 * test/e2e/distributed.test.ts: each role in its own OS process (checkpoint,
 * rate-gateway, executor, planner ×2, api+intake+metrics) over the real NATS,
 * Redis and Postgres, the in-process simulated model at 5 ms.
 *
 *   on:  OTEL_EXPORTER_OTLP_ENDPOINT set (spans exported as OTLP/HTTP JSON to a
 *        receiver in this process, which parses and drops them), metrics on;
 *   off: no endpoint (the OpenTelemetry SDK is not started), CLAWFLEET_METRICS=off
 *        (none of Clawfleet's own series are recorded).
 *
 * Each round starts a fresh cluster per mode (off, on alternating), runs a warm-up
 * batch, then --batches batches of --tasks tasks submitted at once, timing each
 * batch from the first submit to the last task reaching a final state, and summing
 * the CPU seconds every process spent on it (from /proc). Reports medians per mode.
 *
 *   npx tsx bench/observability.ts [--rounds 2] [--batches 3] [--tasks 50] [--json out.json]
 *
 * Needs PostgreSQL, Redis and NATS on 127.0.0.1 (as the tests). Traffic stays on
 * 127.0.0.1; every loop is bounded in count and time.
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import pg from "pg";
import { orderIds } from "../src/tools/orderRouter/data";
import { startNodeProcess, stopAll, submitTask, type NodeProcess } from "../test/helpers/cluster";
import { startOtlpReceiver } from "../test/helpers/otlpReceiver";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "2" },
    batches: { type: "string", default: "3" },
    tasks: { type: "string", default: "50" },
    json: { type: "string" },
  },
});
const ROUNDS = Number(args.rounds);
const BATCHES = Number(args.batches);
const TASKS = Number(args.tasks);
const PG_ADMIN = process.env.CLAWFLEET_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.CLAWFLEET_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const NATS_URL = process.env.CLAWFLEET_TEST_NATS_URL ?? "nats://127.0.0.1:4222";
const TICK_S = 1 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim() || 100);

type Mode = "off" | "on";

interface Batch {
  mode: Mode;
  round: number;
  wallMs: number;
  cpuS: number;
  failed: number;
}

/** utime + stime of a process, in seconds (Linux /proc). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * TICK_S;
  } catch {
    return 0;
  }
}

const clusterCpu = (nodes: readonly NodeProcess[]) => nodes.reduce((s, n) => s + cpuSeconds(n.proc.pid), 0);

/**
 * Waits for the batch in the database itself: one indexed query every 20 ms, the same in both modes,
 * instead of polling every task over the API (which would load the cluster being measured).
 */
async function waitAll(db: pg.Client, ids: readonly string[], timeoutMs: number): Promise<{ failed: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await db.query<{ done: number; failed: number }>(
      "SELECT count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'cancelled'))::int AS done, count(*) FILTER (WHERE status <> 'succeeded' AND status IN ('failed', 'cancelled'))::int AS failed FROM tasks WHERE id = ANY($1::uuid[])",
      [ids],
    );
    const r = rows[0] ?? { done: 0, failed: 0 };
    if (r.done === ids.length) return { failed: r.failed };
    if (Date.now() > deadline) throw new Error(`${ids.length - r.done} tasks not finished after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

async function runMode(mode: Mode, round: number, otlpUrl: string): Promise<Batch[]> {
  const id = `bobs${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const dbName = `clawfleet_bench_${id}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const dbUrl = new URL(PG_ADMIN);
  dbUrl.pathname = `/${dbName}`;
  const env = (services: string) => ({
    TRANSPORTER: NATS_URL,
    REDIS_URL,
    DATABASE_URL: dbUrl.toString(),
    CLAWFLEET_NAMESPACE: id,
    SERVICES: services,
    CLAWFLEET_SIM_LATENCY_MS: "5",
    LOG_LEVEL: "info",
    ...(mode === "on" ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl } : { CLAWFLEET_METRICS: "off" }),
  });
  const nodes: NodeProcess[] = [];
  const batches: Batch[] = [];
  const db = new pg.Client({ connectionString: dbUrl.toString() });
  try {
    nodes.push(await startNodeProcess({ name: "checkpoint", env: env("checkpoint") }));
    nodes.push(
      ...(await Promise.all([
        startNodeProcess({ name: "rate-gateway", env: env("rate-gateway") }),
        startNodeProcess({ name: "executor", env: env("executor") }),
        startNodeProcess({ name: "planner-1", env: env("planner") }),
        startNodeProcess({ name: "planner-2", env: env("planner") }),
        startNodeProcess({ name: "api", env: env("api,intake,metrics") }),
      ])),
    );
    const base = `http://127.0.0.1:${nodes.at(-1)?.port}`;
    await db.connect();
    const orders = orderIds();
    let next = 0;
    const batch = async (n: number) => {
      const picked = Array.from({ length: n }, () => orders[next++ % orders.length] as string);
      const cpu0 = clusterCpu(nodes);
      const t0 = performance.now();
      const submitted = await Promise.all(picked.map((o) => submitTask(base, { agent: "order-router", input: { order_id: o } })));
      const { failed } = await waitAll(
        db,
        submitted.map((s) => s.id),
        120_000,
      );
      return { wallMs: performance.now() - t0, cpuS: clusterCpu(nodes) - cpu0, failed };
    };
    await batch(10); // warm-up: JIT, connection pools, consumer groups
    for (let b = 0; b < BATCHES; b++) {
      const r = await batch(TASKS);
      batches.push({ mode, round, ...r });
      process.stdout.write(`  ${mode} round ${round} batch ${b + 1}: ${Math.round(r.wallMs)} ms, ${r.cpuS.toFixed(2)} CPU s${r.failed ? `, ${r.failed} failed` : ""}\n`);
    }
  } finally {
    await db.end().catch(() => undefined);
    await stopAll(nodes);
    const drop = new pg.Client({ connectionString: PG_ADMIN });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await drop.end();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${id}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
  return batches;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function main(): Promise<void> {
  // The receiver parses every export (as a collector would) and keeps nothing.
  const rx = await startOtlpReceiver({ keep: false });
  const all: Batch[] = [];
  process.stdout.write(`observability overhead: ${ROUNDS} rounds × ${BATCHES} batches × ${TASKS} tasks per mode, ${os.cpus().length} cores, node ${process.version}\n`);
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mode of ["off", "on"] as const) all.push(...(await runMode(mode, round, rx.url)));
    }
  } finally {
    await rx.close();
  }
  const of = (mode: Mode) => all.filter((b) => b.mode === mode);
  const summary = (["off", "on"] as const).map((mode) => ({
    mode,
    batches: of(mode).length,
    wallMsMedian: Math.round(median(of(mode).map((b) => b.wallMs))),
    cpuSMedian: Number(median(of(mode).map((b) => b.cpuS)).toFixed(2)),
    failed: of(mode).reduce((s, b) => s + b.failed, 0),
  }));
  const [off, on] = summary as [(typeof summary)[0], (typeof summary)[0]];
  const pct = (a: number, b: number) => `${(((b - a) / a) * 100).toFixed(1)}%`;
  process.stdout.write(
    [
      "",
      `| mode | ${TASKS}-task batch, wall (median) | CPU seconds, all processes (median) | failed |`,
      "|---|---|---|---|",
      `| off (no tracing, CLAWFLEET_METRICS=off) | ${off.wallMsMedian} ms | ${off.cpuSMedian} s | ${off.failed} |`,
      `| on (OTLP traces + metrics) | ${on.wallMsMedian} ms | ${on.cpuSMedian} s | ${on.failed} |`,
      `| overhead | ${pct(off.wallMsMedian, on.wallMsMedian)} | ${pct(off.cpuSMedian, on.cpuSMedian)} | |`,
      "",
    ].join("\n"),
  );
  if (args.json) fs.writeFileSync(args.json, JSON.stringify({ summary, batches: all }, null, 2));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
