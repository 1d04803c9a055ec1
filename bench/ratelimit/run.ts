/**
 * The rate-limit gateway and the tiered router, measured:
 *
 *   npx tsx bench/ratelimit/run.ts [--window-ms 100000] [--rpm 1800] [--tasks 600] [--burst-x 8]
 *
 * 1. A burst of order-router tasks at `burst-x` times the sustainable task rate,
 *    against a time-scaled provider limit (`rpm` requests per `window-ms`), run
 *    by three contenders one after the other, each against its own simulated
 *    model with the same limits (the sim's request log is the measurement):
 *    - Clawfleet: the distributed cluster (4 planner processes, Redis buckets);
 *    - peer A: 4 worker processes calling the sim with the official SDK and its
 *      own 429 retries;
 *    - peer B: 4 worker processes with BullMQ's rate limiter in front of the calls.
 * 2. The gateway's overhead per call (reserve/settle with Redis; the broker hop).
 * 3. Cost per task, tiered router vs the same agent forced onto the large model.
 *
 * Prints markdown tables (the ones in BENCHMARKS.md).
 */
import { parseArgs } from "node:util";
import { orderIds } from "../../examples/order-router/lib/data";
import { runBurst, startCluster, REDIS_URL, type Arrival } from "./clawfleet";
import { runCostBench, type CostResult } from "./cost";
import { summarize, type Row } from "./metrics";
import { runOverhead, type Overhead } from "./overhead";
import { runPeer } from "./peers";
import { simLog, startSim, type SimOpts } from "./procs";

const { values } = parseArgs({
  options: {
    "window-ms": { type: "string", default: "100000" },
    rpm: { type: "string", default: "1800" },
    tasks: { type: "string", default: "600" },
    "burst-x": { type: "string", default: "8" },
    "calls-per-task": { type: "string", default: "5" },
    "overhead-calls": { type: "string", default: "2000" },
    "cost-tasks": { type: "string", default: "120" },
    only: { type: "string" },
  },
});

const windowMs = Number(values["window-ms"]);
const rpm = Number(values.rpm);
const nTasks = Number(values.tasks);
const burstX = Number(values["burst-x"]);
const callsPerTask = Number(values["calls-per-task"]);
const PLANNERS = 4;
const SLOTS = 16;
const PEER_RETRIES = 10;

// Tokens are generous: requests are the binding limit, the one the peaks are measured on.
const sim: SimOpts = { rpm, itpm: rpm * 4000, otpm: rpm * 1000, windowMs, latencyMs: 50, latencyJitterMs: 30 };
const limits = { "claude-sonnet-5-5": { rpm: sim.rpm, itpm: sim.itpm, otpm: sim.otpm } };

/** `nTasks` orders arriving evenly at burst-x times the sustainable task rate. */
function burst(): Arrival[] {
  const sustainablePerMs = rpm / callsPerTask / windowMs;
  const gap = 1 / (sustainablePerMs * burstX);
  const orders = orderIds();
  return Array.from({ length: nTasks }, (_, i) => ({ order: orders[i % orders.length] as string, at: Math.round(i * gap) }));
}

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

async function clawfleet(arrivals: Arrival[]): Promise<Row> {
  const s = await startSim("sim-clawfleet", sim);
  try {
    log("Clawfleet: starting the cluster");
    const cluster = await startCluster({
      simUrl: s.url,
      planners: PLANNERS,
      slots: SLOTS,
      env: { CLAWFLEET_RATE_LIMITS: JSON.stringify(limits), CLAWFLEET_RATE_LIMIT_WINDOW_MS: String(windowMs) },
    });
    try {
      log(`Clawfleet: ${arrivals.length} tasks`);
      const run = await runBurst(cluster, arrivals, 20 * windowMs);
      return summarize("Clawfleet (gateway + Redis buckets)", await simLog(s.url), run, rpm, windowMs, PLANNERS * SLOTS);
    } finally {
      await cluster.stop();
    }
  } finally {
    await s.stop();
  }
}

async function peer(mode: "sdk" | "bullmq", arrivals: Arrival[]): Promise<Row> {
  const s = await startSim(`sim-${mode}`, sim);
  try {
    log(`peer ${mode}: ${arrivals.length} tasks`);
    const run = await runPeer(
      { mode, simUrl: s.url, workers: PLANNERS, slots: SLOTS, maxRetries: PEER_RETRIES, redisUrl: REDIS_URL, limiter: { max: rpm, duration: windowMs }, bullConcurrency: SLOTS },
      arrivals,
    );
    if (run.errors.length > 0) log(`peer ${mode}: ${run.errors.length} tasks failed, e.g. ${run.errors[0]}`);
    const name = mode === "sdk" ? `peer A: SDK retries (maxRetries ${PEER_RETRIES})` : `peer B: BullMQ limiter {max: ${rpm}, duration: ${windowMs}}`;
    return summarize(name, await simLog(s.url), run, rpm, windowMs, PLANNERS * SLOTS);
  } finally {
    await s.stop();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const ms2 = (x: number) => `${x.toFixed(2)} ms`;

function burstTable(rows: Row[]): string {
  const head = [
    "contender",
    "tasks ok",
    "utilisation",
    "peak / limit (window)",
    "peak / limit (window/60)",
    "provider 429s",
    "task p50 (completed)",
    "task p99 (completed)",
    "drain wall time",
  ];
  const lines = rows.map((r) =>
    [
      r.contender,
      `${r.completed}/${r.tasks}`,
      pct(r.utilisation),
      r.peakWindow.toFixed(2),
      r.peakShort.toFixed(2),
      String(r.provider429),
      sec(r.p50),
      sec(r.p99),
      sec(r.wallMs),
    ].join(" | "),
  );
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...lines.map((l) => `| ${l} |`)].join("\n");
}

function overheadTable(o: Overhead): string {
  return [
    "| path (sequential calls, sim latency 0) | p50 | p99 |",
    "|---|---|---|",
    `| direct SDK call to the sim (baseline) | ${ms2(o.direct.p50)} | ${ms2(o.direct.p99)} |`,
    `| reserve (Lua on Redis, on the call's path) | ${ms2(o.reserve.p50)} | ${ms2(o.reserve.p99)} |`,
    `| settle (Lua on Redis, off the path) | ${ms2(o.settle.p50)} | ${ms2(o.settle.p99)} |`,
    `| reserve + settle | ${ms2(o.reserveSettle.p50)} | ${ms2(o.reserveSettle.p99)} |`,
    `| added latency: (reserve + call) − direct | ${ms2(o.limitedMinusDirect.p50)} | ${ms2(o.limitedMinusDirect.p99)} |`,
    `| added latency: planner → NATS → rate-gateway process − direct | ${ms2(o.brokerHop.p50)} | ${ms2(o.brokerHop.p99)} |`,
  ].join("\n");
}

function costTable(results: CostResult[]): string {
  const usd = (x: number) => `$${x.toFixed(5)}`;
  return [
    "| workload | tiered: cost/task | forced large: cost/task | saving | completion (tiered / forced) | correct routing (tiered / forced) |",
    "|---|---|---|---|---|---|",
    ...results.map(
      (r) =>
        `| ${r.tasks} tasks, ${pct(r.simpleShare)} simple | ${usd(r.tiered.costPerTask)} | ${usd(r.forced.costPerTask)} | ${pct(1 - r.tiered.costPerTask / r.forced.costPerTask)} | ${pct(r.tiered.completion)} / ${pct(r.forced.completion)} | ${pct(r.tiered.correct)} / ${pct(r.forced.correct)} |`,
    ),
  ].join("\n");
}

async function main(): Promise<void> {
  const started = Date.now();
  const only = values.only?.split(",");
  const want = (x: string) => only === undefined || only.includes(x);
  const out: string[] = [];
  const arrivals = burst();
  const rows: Row[] = [];
  if (want("clawfleet")) rows.push(await clawfleet(arrivals));
  if (want("sdk")) rows.push(await peer("sdk", arrivals));
  if (want("bullmq")) rows.push(await peer("bullmq", arrivals));
  if (rows.length > 0) {
    out.push(
      `Burst: ${nTasks} order-router tasks arriving over ${sec(arrivals.at(-1)?.at ?? 0)} (${burstX}× the sustainable ${(rpm / callsPerTask / (windowMs / 1000)).toFixed(2)} tasks/s); ` +
        `provider limit ${rpm} requests per ${windowMs / 1000} s window (${sim.itpm} input / ${sim.otpm} output tokens); sim latency ${sim.latencyMs}+[0,${sim.latencyJitterMs}) ms; ` +
        `${PLANNERS} planner / worker processes × ${SLOTS} slots each.\n`,
      burstTable(rows),
    );
  }
  if (want("overhead")) {
    log("gateway overhead");
    out.push("", overheadTable(await runOverhead(Number(values["overhead-calls"]))));
  }
  if (want("cost")) {
    log("tiered router cost");
    const n = Number(values["cost-tasks"]);
    out.push("", costTable([await runCostBench(n, 0.9), await runCostBench(n, 0.95)]));
  }
  out.push("", `(total run ${sec(Date.now() - started)})`);
  process.stdout.write(`${out.join("\n")}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
