/**
 * Fairness between tenants: tenant A queues --tasks order-router tasks, then
 * tenant B submits one. How long does B's task wait?
 *
 * One distributed node (every role in this process) on the local NATS, Redis and
 * Postgres, the simulated model at --latency-ms per answer, --slots planner slots,
 * no quotas. A's tasks go in through `intake.submit` (as the api passes a tenant),
 * so A's wake-ups are all in the stream before B's. Prints B's start delay
 * (started_at − created_at, both Postgres' clock) and its finish delay, and A's
 * throughput over --window-s seconds after B's submission; A's remaining backlog is
 * then abandoned with the scratch database.
 *
 *   TSX_TSCONFIG_PATH=examples/tsconfig.json npx tsx bench/fairness.ts [--tasks 10000] [--slots 8] [--latency-ms 20] [--window-s 20]
 *
 * (TSX_TSCONFIG_PATH: the example's tool service imports the package by name, resolved to the sources.)
 *
 * Isolation: a fresh database and namespace, removed afterwards.
 */
import { parseArgs } from "node:util";
import pg from "pg";
import { startNode } from "../app/node";
import { loadConfig } from "../src/config";
import { EXAMPLES_ENV } from "../testkit/examples";
import { createScratch } from "../testkit/scratch";

const { values: args } = parseArgs({
  options: {
    tasks: { type: "string", default: "10000" },
    slots: { type: "string", default: "8" },
    "latency-ms": { type: "string", default: "20" },
    "window-s": { type: "string", default: "20" },
  },
});
const TASKS = Number(args.tasks);
const SLOTS = Number(args.slots);
const LATENCY_MS = Number(args["latency-ms"]);
const WINDOW_S = Number(args["window-s"]);
if (![TASKS, SLOTS, LATENCY_MS, WINDOW_S].every((n) => Number.isInteger(n) && n >= 0) || SLOTS < 1 || TASKS < 1) {
  throw new Error("--tasks, --slots, --latency-ms and --window-s take non-negative integers (--tasks and --slots at least 1)");
}

const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Times {
  status: string;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

async function main(): Promise<void> {
  const scratch = await createScratch("fair");
  const db = new pg.Pool({ connectionString: scratch.db.url, max: 2 });
  const config = loadConfig({
    ...process.env,
    ...EXAMPLES_ENV,
    ...scratch.env("all"),
    PORT: "0",
    LOG_LEVEL: "warn",
    CLAWFLEET_PLANNER_SLOTS: String(SLOTS),
    CLAWFLEET_SIM_LATENCY_MS: String(LATENCY_MS),
  });
  const node = await startNode(config);
  try {
    const submit = (tenant: string, i: number) =>
      node.broker.call<{ id: string }, unknown>("intake.submit", { body: { agent: "order-router", input: { order_id: `ORD-${1001 + (i % 50)}` } }, tenant });

    const t0 = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < TASKS) await submit("tenant-a", next++);
      }),
    );
    const submitS = (Date.now() - t0) / 1000;
    const count = async (sql: string) => (await db.query<{ n: number }>(sql)).rows[0]?.n ?? 0;
    const aDoneBefore = await count("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'tenant-a' AND status IN ('succeeded', 'failed')");
    const aQueued = await count("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'tenant-a' AND status = 'queued'");
    log(`tenant A: ${TASKS} tasks submitted in ${submitS.toFixed(1)} s (${(TASKS / submitS).toFixed(0)}/s); ${aQueued} still queued, ${aDoneBefore} done`);

    const bSubmitted = Date.now();
    const { id: b } = await submit("tenant-b", 0);
    let times: Times | undefined;
    while (Date.now() - bSubmitted < 60_000) {
      times = (await db.query<Times>("SELECT status, created_at, started_at, finished_at FROM tasks WHERE id = $1", [b])).rows[0];
      if (times?.finished_at) break;
      await sleep(10);
    }
    const bFinishedMs = Date.now() - bSubmitted;
    if (!times?.started_at || !times.finished_at) throw new Error(`tenant B's task did not finish within 60 s (${times?.status ?? "not found"})`);

    const windowStart = Date.now();
    const aDone0 = await count("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'tenant-a' AND status IN ('succeeded', 'failed')");
    await sleep(WINDOW_S * 1000);
    const aDone1 = await count("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'tenant-a' AND status IN ('succeeded', 'failed')");
    const throughput = (aDone1 - aDone0) / ((Date.now() - windowStart) / 1000);
    const aLeft = await count("SELECT count(*)::int AS n FROM tasks WHERE tenant = 'tenant-a' AND status = 'queued'");

    const startMs = times.started_at.getTime() - times.created_at.getTime();
    const finishMs = times.finished_at.getTime() - times.created_at.getTime();
    console.log("fairness: tenant B's one task behind tenant A's backlog (distributed, one process, Postgres+Redis+NATS)");
    console.log(`  tenant A: ${TASKS} tasks submitted (${aQueued} queued when B submitted), ${SLOTS} planner slots, sim latency ${LATENCY_MS} ms`);
    console.log(`  tenant B: started ${startMs} ms after its submission (started_at - created_at), finished after ${finishMs} ms (${bFinishedMs} ms to the bench seeing it)`);
    console.log(`  tenant A: ${throughput.toFixed(1)} tasks/s over ${WINDOW_S} s after B (${aLeft} still queued)`);
    console.log(`  behind a FIFO of A's wake-ups, B would have waited about ${(aQueued / Math.max(throughput, 0.001)).toFixed(0)} s`);
  } finally {
    await node.stop().catch((err: unknown) => log(`stop failed: ${String(err)}`));
    await db.end();
    await scratch.remove();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
