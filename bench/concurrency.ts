/**
 * Concurrency: how many tasks one planner process holds in flight at a slow model, what each costs in
 * memory, and whether the cluster's throughput is then bounded by the model (its latency and its rate
 * limit) rather than by Clawfleet.
 *
 * A distributed cluster on this machine's Postgres, Redis and NATS (checkpoint, api+intake+metrics,
 * rate-gateway, one executor, and ONE planner with the default slots), against a `clawfleet sim` process
 * answering after --latency-ms. --tasks order-router tasks are submitted before the planner starts, so
 * it meets a full queue. Sampled every 500 ms: the planner's leases held (`clawfleet_leases_held`, one
 * per task in flight), its resident set (/proc), and tasks finished (Postgres).
 *
 * Printed per run: peak tasks in flight, RSS before the planner took work and at the peak, RSS per
 * task in flight, and throughput while the planner was at its peak against the bound the model sets:
 * in-flight / (model calls per task x latency), or the sim's rate limit / calls per task when lower.
 * Two runs: a generous sim rate limit, then --limited-rpm, low enough that the limit binds.
 *
 *   TSX_TSCONFIG_PATH=examples/tsconfig.json npx tsx bench/concurrency.ts [--tasks 3000] [--latency-ms 2000] [--limited-rpm 6000] [--limited-tasks N]
 *
 * Isolation: each run its own database and namespace, removed afterwards.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { orderIds } from "../examples/order-router/lib/data";
import { EXECUTOR_ROLES, freePort, ORDER_ROUTER_SIM_POLICIES, packageResolutionEnv, ROOT, spawnCaptured } from "../testkit/cluster";
import { Cluster, simStats, sleep, submit } from "../testkit/crash";
import { createScratch, NATS_TEST_URL, REDIS_TEST_URL } from "../testkit/scratch";

const { values: args } = parseArgs({
  options: {
    tasks: { type: "string", default: "3000" },
    "latency-ms": { type: "string", default: "2000" },
    "generous-rpm": { type: "string", default: "1000000" },
    "limited-rpm": { type: "string", default: "6000" },
    /** Tasks of the rate-limited run. @default --tasks */
    "limited-tasks": { type: "string" },
    "submit-concurrency": { type: "string", default: "32" },
  },
});
const TASKS = Number(args.tasks);
const LIMITED_TASKS = Number(args["limited-tasks"] ?? args.tasks);
const LATENCY_MS = Number(args["latency-ms"]);
const SUBMIT_CONCURRENCY = Number(args["submit-concurrency"]);
if (![TASKS, LIMITED_TASKS, LATENCY_MS, SUBMIT_CONCURRENCY, Number(args["generous-rpm"]), Number(args["limited-rpm"])].every((n) => Number.isInteger(n) && n > 0)) {
  throw new Error("every option takes a positive integer");
}

const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const MB = 1_048_576;

interface Sample {
  at: number;
  inFlight: number;
  rssBytes: number;
  done: number;
}

interface RunFigures {
  rpm: number;
  tasks: number;
  peakInFlight: number;
  rssBeforeMb: number;
  rssAtPeakMb: number;
  rssPerTaskKb: number;
  callsPerTask: number;
  windowS: number;
  meanInFlight: number;
  throughput: number;
  latencyBound: number;
  rateBound: number;
  failed: number;
  wallS: number;
}

/** Resident set of a process, from /proc (Linux). */
function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

async function leasesHeld(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const line = text.split("\n").find((l) => l.startsWith("clawfleet_leases_held"));
  return line === undefined ? 0 : Number(line.split(/\s+/).pop());
}

async function startSimWithLimit(rpm: number): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const sim = spawnCaptured(
    [path.join(ROOT, "bin", "clawfleet.js"), "sim", "--port", String(port), "--latency-ms", String(LATENCY_MS), "--rpm", String(rpm), "--policies", ORDER_ROUTER_SIM_POLICIES],
    packageResolutionEnv(),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (await fetch(`${url}/_sim/stats`).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) {
      sim.proc.kill("SIGKILL");
      throw new Error(`sim not up:\n${sim.output().slice(-2000)}`);
    }
    await sleep(200);
  }
  return {
    url,
    stop: async () => {
      sim.proc.kill("SIGTERM");
      await sim.exited;
    },
  };
}

async function submitAll(base: string, n: number): Promise<string[]> {
  const orders = orderIds();
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: SUBMIT_CONCURRENCY }, async () => {
      while (next < n) {
        const i = next++;
        ids.push(await submit(base, { order_id: orders[i % orders.length] }));
      }
    }),
  );
  return ids;
}

async function run(rpm: number, tasks: number): Promise<RunFigures> {
  const scratch = await createScratch("benchconc", "clawfleet_bench_");
  const sim = await startSimWithLimit(rpm).catch(async (err: unknown) => {
    await scratch.remove();
    throw err;
  });
  const db = new pg.Pool({ connectionString: scratch.db.url, max: 2 });
  const cluster = new Cluster({
    namespace: scratch.namespace,
    databaseUrl: scratch.db.url,
    redisUrl: REDIS_TEST_URL,
    natsUrl: NATS_TEST_URL,
    simUrl: sim.url,
    // Thousands of tasks' info lines would only cost the bench's own memory.
    env: { LOG_LEVEL: "warn", CLAWFLEET_REAPER_QUEUED_AFTER_MS: "600000" },
  });
  try {
    await cluster.start("checkpoint", "checkpoint");
    const [api] = await Promise.all([cluster.start("api", "api,intake,metrics"), cluster.start("rate-gateway", "rate-gateway"), cluster.start("executor-1", EXECUTOR_ROLES)]);
    if (!api) throw new Error("no api node");
    const base = `http://127.0.0.1:${api.port}`;
    log(`run rpm=${rpm}: submitting ${tasks} tasks`);
    const ids = await submitAll(base, tasks);
    const before = { sim: await simStats(sim.url) };
    // The planner starts on a full queue, with the default slots and memory cap.
    const planner = await cluster.start("planner-1", "planner");
    const rssBefore = rssOf(planner.pid);
    log(`planner ready (rss ${Math.round(rssBefore / MB)} MB); sampling`);
    const started = Date.now();
    const samples: Sample[] = [];
    let failed = 0;
    for (;;) {
      const [inFlight, counts] = await Promise.all([
        leasesHeld(planner.port).catch(() => -1),
        db.query<{ done: string; failed: string }>(
          "SELECT count(*) FILTER (WHERE status IN ('succeeded','failed','cancelled')) AS done, count(*) FILTER (WHERE status = 'failed') AS failed FROM tasks",
        ),
      ]);
      const done = Number(counts.rows[0]?.done ?? 0);
      failed = Number(counts.rows[0]?.failed ?? 0);
      samples.push({ at: Date.now(), inFlight, rssBytes: rssOf(planner.pid), done });
      if (samples.length % 10 === 0) log(`in flight ${inFlight}, done ${done}/${ids.length}, rss ${Math.round(rssOf(planner.pid) / MB)} MB`);
      if (done >= ids.length) break;
      if (Date.now() - started > 30 * 60_000) throw new Error("tasks not done within 30 minutes");
      const minuteAgo = samples.find((x) => x.at >= Date.now() - 90_000);
      if (minuteAgo && minuteAgo.at < Date.now() - 80_000 && minuteAgo.done === done) throw new Error(`no task finished for 90 s (done ${done}/${ids.length})`);
      await sleep(500);
    }
    const wallS = (Date.now() - started) / 1000;
    const calls = (await simStats(sim.url)).requests - before.sim.requests;
    const callsPerTask = calls / ids.length;
    const peak = samples.reduce((a, s) => (s.inFlight > a.inFlight ? s : a));
    // The steady window: while the planner held at least 90% of its peak.
    const steady = samples.filter((s) => s.inFlight >= 0.9 * peak.inFlight);
    const first = steady[0] ?? peak;
    const last = steady[steady.length - 1] ?? peak;
    const windowS = Math.max(0.001, (last.at - first.at) / 1000);
    const meanInFlight = steady.reduce((a, s) => a + s.inFlight, 0) / Math.max(1, steady.length);
    const latencyBound = meanInFlight / (callsPerTask * (LATENCY_MS / 1000));
    const rateBound = rpm / 60 / callsPerTask;
    return {
      rpm,
      tasks,
      peakInFlight: peak.inFlight,
      rssBeforeMb: rssBefore / MB,
      rssAtPeakMb: peak.rssBytes / MB,
      rssPerTaskKb: (peak.rssBytes - rssBefore) / 1024 / Math.max(1, peak.inFlight),
      callsPerTask,
      windowS,
      meanInFlight,
      throughput: (last.done - first.done) / windowS,
      latencyBound,
      rateBound,
      failed,
      wallS,
    };
  } finally {
    // Every process's output to $CLAWFLEET_CRASH_LOGS/concurrency-<rpm>/ when that variable names a folder.
    cluster.dump(`concurrency-${rpm}`);
    await cluster.stopAll();
    await sim.stop();
    await db.end();
    await scratch.remove();
  }
}

function report(label: string, f: RunFigures): string {
  const bound = Math.min(f.latencyBound, f.rateBound);
  return [
    `${label} (sim --rpm ${f.rpm}, ${f.tasks} tasks):`,
    `  peak tasks in flight in the planner   ${f.peakInFlight}`,
    `  planner RSS before / at peak          ${f.rssBeforeMb.toFixed(0)} MB / ${f.rssAtPeakMb.toFixed(0)} MB`,
    `  RSS per task in flight                ${f.rssPerTaskKb.toFixed(0)} KB`,
    `  model calls per task                  ${f.callsPerTask.toFixed(2)}`,
    `  steady window (>= 90% of peak)        ${f.windowS.toFixed(1)} s, mean ${f.meanInFlight.toFixed(0)} in flight`,
    `  throughput in that window             ${f.throughput.toFixed(1)} tasks/s`,
    `  bound: latency ${f.latencyBound.toFixed(1)}, rate limit ${f.rateBound.toFixed(1)} tasks/s -> ${((100 * f.throughput) / bound).toFixed(0)}% of min`,
    `  failed tasks ${f.failed}; all done after ${f.wallS.toFixed(1)} s`,
  ].join("\n");
}

async function main(): Promise<void> {
  log(`${os.cpus().length} cores, ${TASKS} tasks, model latency ${LATENCY_MS} ms`);
  const generous = await run(Number(args["generous-rpm"]), TASKS);
  process.stdout.write(`${report("generous rate limit", generous)}\n`);
  const limited = await run(Number(args["limited-rpm"]), LIMITED_TASKS);
  process.stdout.write(`${report("rate limit binding", limited)}\n`);
  process.stdout.write(`load average (1, 5, 15 min): ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
