/**
 * The store's count behind `GET /v1/queues` (`countOpenWork`: queued, running and
 * awaiting-approval tasks, and the dead letters) on a table of --tasks tasks of
 * which only --open are not finished, next to `countByStatus` (every task, grouped):
 * the median and p95 of --runs calls each, and the plan Postgres chose.
 *
 *   npx tsx bench/openWorkCount.ts [--tasks 100000] [--open 300] [--runs 50] [--store postgres|pglite]
 *
 * Isolation: a fresh Postgres database (dropped afterwards), or an in-memory PGlite.
 */
import { parseArgs } from "node:util";
import { openStore, type OpenedStore } from "../src/store/pgTaskStore";
import { percentile } from "../testkit/crash";
import { createTestDatabase, type TestDatabase } from "../testkit/scratch";

const { values: args } = parseArgs({
  options: {
    tasks: { type: "string", default: "100000" },
    open: { type: "string", default: "300" },
    runs: { type: "string", default: "50" },
    store: { type: "string", default: "postgres" },
  },
});
const total = Number(args.tasks);
const open = Number(args.open);
const runs = Number(args.runs);

async function timed(runsLeft: number, call: () => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < runsLeft; i++) {
    const t0 = performance.now();
    await call();
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b);
}

async function fill(db: OpenedStore): Promise<void> {
  const third = Math.floor(open / 3);
  // Finished tasks, then the open ones split over the three open statuses; a tenth of the failed ones dead-lettered.
  await db.pool.query(`
    INSERT INTO tasks (id, agent, input, prompt_version, status)
    SELECT gen_random_uuid(), 'order-router', '{}'::jsonb, 'pv',
           CASE WHEN g <= $2 THEN (ARRAY['queued', 'running', 'awaiting_approval'])[1 + g % 3]
                WHEN g % 20 = 0 THEN 'failed' ELSE 'succeeded' END
    FROM generate_series(1, $1::int) AS g`, [total, third * 3]);
  await db.pool.query(`
    INSERT INTO dead_letters (task_id, agent, error, attempts)
    SELECT id, agent, '{"type":"tool_error","message":"x"}'::jsonb, 3 FROM tasks WHERE status = 'failed' LIMIT $1`, [Math.ceil(total / 200)]);
  await db.pool.query("VACUUM ANALYZE tasks");
  await db.pool.query("VACUUM ANALYZE dead_letters");
}

async function main(): Promise<void> {
  let scratch: TestDatabase | undefined;
  let db: OpenedStore | undefined;
  try {
    if (args.store === "pglite") db = await openStore({ dataDir: "memory://" });
    else {
      scratch = await createTestDatabase("clawfleet_bench_");
      db = await openStore({ databaseUrl: scratch.url });
    }
    await fill(db);
    const store = db.store;
    console.log(`store: ${db.kind}, tasks: ${total}, open: ${JSON.stringify(await store.countOpenWork())}`);
    for (const [name, call] of [
      ["countOpenWork", () => store.countOpenWork()],
      ["countByStatus", () => store.countByStatus()],
    ] as const) {
      await timed(5, call);
      const ms = await timed(runs, call);
      console.log(`${name.padEnd(14)} median ${percentile(ms, 50).toFixed(2)} ms   p95 ${percentile(ms, 95).toFixed(2)} ms   (${runs} calls)`);
    }
    const plan = await db.pool.query<{ "QUERY PLAN": string }>("EXPLAIN SELECT count(*) FROM tasks WHERE status = 'queued'");
    console.log(`plan of one open status: ${plan.rows.map((r) => r["QUERY PLAN"].trim()).join(" | ")}`);
  } finally {
    await db?.close();
    await scratch?.drop();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
