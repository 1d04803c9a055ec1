/**
 * How soon a live stream (`GET /v1/tasks/{id}/events`) shows a step once it is committed, on an api
 * replica in its own process. The split layout of bench/throughput (checkpoint, rate-gateway,
 * executor, two planners, api+intake+metrics over NATS, Redis and Postgres), the simulated model in
 * the rate gateway at `--latency-ms` per call so that a task's steps come one by one. Each sample
 * submits an order-router task and follows its stream at once, to the end; one at a time.
 *
 * The first stream is opened on an api that has served none: it is sent the task events only once it
 * serves one (src/api/streamSubscription.ts), and until the other nodes have heard of that its
 * stream sees steps only by looking again. The later ones find the subscription in place. Per stream: each step's lag from the
 * step's row (`created_at`, Postgres' clock: its transaction's start) to its `step` frame received
 * here, median and max. Both clocks are this machine's.
 *
 *   npx tsx bench/streamLag.ts [--streams 6] [--latency-ms 150]
 *
 * Needs PostgreSQL, Redis and NATS on 127.0.0.1 (as the tests).
 */
import { parseArgs } from "node:util";
import pg from "pg";
import { submit } from "../testkit/crash";
import { readSse } from "../testkit/sse";
import { startLayout } from "./throughput/layouts";

const { values: args } = parseArgs({ options: { streams: { type: "string", default: "6" }, "latency-ms": { type: "string", default: "150" } } });
const STREAMS = Number(args.streams);
const LATENCY_MS = Number(args["latency-ms"]);
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** One task followed from its submit to its end: each step's lag, commit to frame, in ms. */
async function follow(base: string, db: pg.Pool): Promise<number[]> {
  const id = await submit(base, { order_id: "ORD-1042" });
  const received = new Map<number, number>();
  const r = await readSse(`${base}/v1/tasks/${id}/events`, {
    cutAfterMs: 60_000,
    onFrame: (f) => {
      if (f.event === "step") received.set((JSON.parse(f.data) as { step: number }).step, Date.now());
      return !TERMINAL.has(f.event);
    },
  });
  if (r.status !== 200) throw new Error(`the stream answered ${r.status}`);
  const { rows } = await db.query<{ step: number; at: number }>("SELECT step, extract(epoch FROM created_at) * 1000 AS at FROM steps WHERE task_id = $1 ORDER BY step", [id]);
  const missing = rows.filter((s) => !received.has(s.step));
  if (missing.length > 0) throw new Error(`the stream of ${id} missed steps ${missing.map((s) => s.step).join(", ")}`);
  return rows.map((s) => (received.get(s.step) as number) - Number(s.at)).sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const run = await startLayout("split", { slots: 8, provider: "in-process", env: { CLAWFLEET_SIM_LATENCY_MS: String(LATENCY_MS) } });
  const db = new pg.Pool({ connectionString: run.scratch?.db.url, max: 2 });
  try {
    process.stdout.write(`stream lag bench: split layout, the simulated model at ${LATENCY_MS} ms per call, ${STREAMS} streams one after another\n`);
    for (let i = 0; i < STREAMS; i++) {
      const lags = await follow(run.base, db);
      const label = i === 0 ? "first stream on an idle api" : `stream ${i + 1}`;
      process.stdout.write(`  ${label.padEnd(28)} ${lags.length} steps, lag from commit to frame: median ${lags[Math.floor(lags.length / 2)]?.toFixed(0)} ms, max ${lags.at(-1)?.toFixed(0)} ms\n`);
    }
  } finally {
    await db.end();
    await run.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
