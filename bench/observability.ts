/**
 * Overhead of tracing + metrics on the 50-task distributed scenario of
 * test/e2e/distributed.test.ts: each role in its own OS process (checkpoint,
 * rate-gateway, executor, planner ×2, api+intake+metrics) over the real NATS,
 * Redis and Postgres, the in-process simulated model at 5 ms.
 *
 *   on:      OTEL_EXPORTER_OTLP_ENDPOINT set (spans exported as OTLP/HTTP JSON to a
 *            receiver in this process, which parses and drops them), metrics on;
 *   off:     no endpoint (the OpenTelemetry SDK is not started), CLAWFLEET_METRICS=off
 *            (none of Clawfleet's own series are recorded);
 *   metrics: metrics on, tracing off: splits the two.
 *
 * One cluster per mode runs side by side (each idle while another works); after a
 * warm-up batch, rounds × batches rounds each run one batch of --tasks tasks
 * (submitted at once) per mode in turn, so every round compares the modes under the
 * same background load. A batch is timed from the first submit to the last task
 * reaching a final state, and the CPU seconds every process of the cluster spent on
 * it are summed (from /proc). Reports medians per mode and the median of the
 * per-round ratios against "off".
 *
 *   npx tsx bench/observability.ts [--rounds 4] [--batches 2] [--tasks 50] [--modes off,metrics,on] [--json out.json]
 *
 * Needs PostgreSQL, Redis and NATS on 127.0.0.1 (as the tests). Traffic stays on
 * 127.0.0.1; every loop is bounded in count and time.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import pg from "pg";
import { orderIds } from "../examples/order-router/lib/data";
import { startRoleProcesses, stopAll, submitTask, type NodeProcess } from "../testkit/cluster";
import { startOtlpReceiver } from "../testkit/otlpReceiver";
import { createScratch } from "../testkit/scratch";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "4" },
    modes: { type: "string", default: "off,metrics,on" },
    batches: { type: "string", default: "2" },
    tasks: { type: "string", default: "50" },
    json: { type: "string" },
  },
});
const ROUNDS = Number(args.rounds);
const BATCHES = Number(args.batches);
const TASKS = Number(args.tasks);
const TICK_S = 1 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim() || 100);

const MODES = ["off", "metrics", "on"] as const;
type Mode = (typeof MODES)[number];
const SELECTED = (args.modes ?? "off,metrics,on").split(",").map((m) => {
  if (!(MODES as readonly string[]).includes(m)) throw new Error(`unknown mode ${m}; modes: ${MODES.join(", ")}`);
  return m as Mode;
});

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

interface Cluster {
  mode: Mode;
  /** Runs `n` tasks submitted at once; wall time and the CPU seconds all its processes spent. */
  batch(n: number): Promise<{ wallMs: number; cpuS: number; failed: number }>;
  close(): Promise<void>;
}

async function startCluster(mode: Mode, otlpUrl: string): Promise<Cluster> {
  const scratch = await createScratch("bobs", "clawfleet_bench_");
  const env = (services: string) => ({
    ...scratch.env(services),
    CLAWFLEET_SIM_LATENCY_MS: "5",
    LOG_LEVEL: "info",
    ...(mode === "on" ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl } : {}),
    ...(mode === "off" ? { CLAWFLEET_METRICS: "off" } : {}),
  });
  const nodes: NodeProcess[] = [];
  const db = new pg.Client({ connectionString: scratch.db.url });
  const close = async () => {
    await db.end().catch(() => undefined);
    await stopAll(nodes);
    await scratch.remove();
  };
  let base: string;
  try {
    base = await startRoleProcesses(nodes, env);
    await db.connect();
  } catch (err) {
    await close();
    throw err;
  }
  const orders = orderIds();
  let next = 0;
  return {
    mode,
    close,
    async batch(n) {
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
    },
  };
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
  process.stdout.write(`observability overhead: ${ROUNDS * BATCHES} interleaved batches of ${TASKS} tasks per mode (${SELECTED.join(", ")}), ${os.cpus().length} cores, node ${process.version}\n`);
  // One cluster per mode, side by side (idle while another runs), batches interleaved mode by mode:
  // each round compares the modes under the same background load of a shared machine.
  const clusters: Cluster[] = [];
  try {
    for (const mode of SELECTED) clusters.push(await startCluster(mode, rx.url));
    for (const c of clusters) await c.batch(10); // warm-up: JIT, connection pools, consumer groups
    for (let round = 1; round <= ROUNDS * BATCHES; round++) {
      for (const c of clusters) {
        const r = await c.batch(TASKS);
        all.push({ mode: c.mode, round, ...r });
        process.stdout.write(`  round ${round} ${c.mode}: ${Math.round(r.wallMs)} ms, ${r.cpuS.toFixed(2)} CPU s${r.failed ? `, ${r.failed} failed` : ""}\n`);
      }
    }
  } finally {
    for (const c of clusters) await c.close();
    await rx.close();
  }
  const of = (mode: Mode) => all.filter((b) => b.mode === mode);
  const summary = SELECTED.map((mode) => ({
    mode,
    batches: of(mode).length,
    wallMsMedian: Math.round(median(of(mode).map((b) => b.wallMs))),
    cpuSMedian: Number(median(of(mode).map((b) => b.cpuS)).toFixed(2)),
    failed: of(mode).reduce((s, b) => s + b.failed, 0),
  }));
  const label: Record<Mode, string> = {
    off: "off (no tracing, CLAWFLEET_METRICS=off)",
    metrics: "metrics only (no tracing)",
    on: "on (OTLP traces + metrics)",
  };
  const off = summary.find((s) => s.mode === "off");
  // Paired: each round's batch of a mode against the same round's "off" batch, then the median ratio.
  const paired = (mode: Mode, key: "wallMs" | "cpuS") =>
    median(of(mode).flatMap((b) => {
      const base = all.find((x) => x.mode === "off" && x.round === b.round);
      return base ? [b[key] / base[key]] : [];
    }));
  const pctRatio = (r: number) => `${r >= 1 ? "+" : ""}${((r - 1) * 100).toFixed(1)}%`;
  process.stdout.write(
    [
      "",
      `| mode | ${TASKS}-task batch, wall (median) | CPU seconds, all processes (median) | vs off, paired by round (wall / CPU, median) | failed |`,
      "|---|---|---|---|---|",
      ...summary.map(
        (s) =>
          `| ${label[s.mode]} | ${s.wallMsMedian} ms | ${s.cpuSMedian} s | ${off && s.mode !== "off" ? `${pctRatio(paired(s.mode, "wallMs"))} / ${pctRatio(paired(s.mode, "cpuS"))}` : ""} | ${s.failed} |`,
      ),
      "",
    ].join("\n"),
  );
  if (args.json) fs.writeFileSync(args.json, JSON.stringify({ summary, batches: all }, null, 2));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
