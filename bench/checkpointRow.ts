/**
 * A checkpoint's write of its task row, before and after migration 016 (heap-only checkpoints):
 * --clients connections each append steps, a model turn's then a tool's, to their share of --running
 * running tasks among --tasks rows, for --seconds, through the store's checkpoint statement
 * (`APPEND_STEPS_SQL`, one checkpoint a statement). Per arm, printed: checkpoints/s; the CPU the
 * clients' Postgres backends used per checkpoint (/proc, so Postgres must run on this machine); the
 * share of the task-row updates Postgres wrote heap-only; WAL per checkpoint (the server's, so a quiet
 * machine is assumed); how much the indexes and the heap of `tasks` grew; and, after a vacuum, the
 * median of the daily cost cap's sum (`agentCostSince`) over the agent's tasks of the day (the rows span ten
 * days, a tenth of them today).
 * Autovacuum is off on the arm's `tasks` while it runs, and a CHECKPOINT precedes it, so neither lands
 * in one arm's figures only.
 *
 *   npx tsx bench/checkpointRow.ts [--seconds 15] [--clients 4] [--running 2000] [--tasks 50000] [--rounds 2]
 *
 * The arms alternate, each on a fresh database (dropped afterwards):
 * - before: migrations 001–015, and the statement as it was, moving `updated_at` at every checkpoint;
 * - after: every migration, and the statement as it is.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { APPEND_STEPS_SQL, CHECKPOINT_UPDATED_AT } from "../src/store/checkpointBatch";
import { migrate, migrationsDir } from "../src/store/migrate";
import { PgTaskStore } from "../src/store/pgTaskStore";
import { cpuMs } from "./throughput/meters";
import { percentile } from "../testkit/crash";
import { createTestDatabase } from "../testkit/scratch";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "15" },
    clients: { type: "string", default: "4" },
    running: { type: "string", default: "2000" },
    tasks: { type: "string", default: "50000" },
    rounds: { type: "string", default: "2" },
  },
});
const SECONDS = Number(args.seconds);
const CLIENTS = Number(args.clients);
const RUNNING = Number(args.running);
const TASKS = Number(args.tasks);
const ROUNDS = Number(args.rounds);

/** The first migration the "before" arm leaves out. */
const FIRST_LEFT_OUT = "016_hot_checkpoints.sql";

interface Arm {
  name: "before" | "after";
  /** The migrations the arm's schema is made of. */
  migrations: string;
  sql: string;
}

const LLM_DATA = JSON.stringify({
  model: "claude-sim",
  tier: "fast",
  stop_reason: "tool_use",
  usage: { input_tokens: 310, output_tokens: 42, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: 0.00156 },
  content: [{ type: "tool_use", id: "toolu_01", name: "check_inventory", input: { sku: "SKU-1", warehouse: "WH-NYC" } }],
  duration_ms: 2,
});
const TOOL_DATA = JSON.stringify({
  tool: "check_inventory",
  tool_use_id: "toolu_01",
  input: { sku: "SKU-1", warehouse: "WH-NYC" },
  output: { sku: "SKU-1", warehouse: "WH-NYC", available: 12 },
  ok: true,
  duration_ms: 1,
  idempotency_key: "k",
});

/** A folder with the migrations before 016, for the "before" arm's schema. */
function migrationsBefore(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-migrations-"));
  for (const f of fs.readdirSync(migrationsDir())) if (f < FIRST_LEFT_OUT) fs.copyFileSync(path.join(migrationsDir(), f), path.join(dir, f));
  return dir;
}

/** CPU ms (user + system) of a Postgres backend, from /proc; undefined where it is not this machine's. */
function cpuMsOf(pid: number): number | undefined {
  try {
    // A pid from a Postgres in a container or on another host may name some other process here.
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("postgres")) return undefined;
  } catch {
    return undefined;
  }
  const ms = cpuMs(pid);
  return Number.isNaN(ms) ? undefined : ms;
}

interface Sizes {
  indexBytes: number;
  heapBytes: number;
  updates: number;
  hotUpdates: number;
  walLsn: string;
}

async function sizes(pool: pg.Pool): Promise<Sizes> {
  await pool.query("SELECT pg_stat_clear_snapshot()");
  const { rows } = await pool.query<{ i: string; h: string; u: string; hot: string; lsn: string }>(
    `SELECT pg_indexes_size('tasks')::text AS i, pg_relation_size('tasks')::text AS h, n_tup_upd::text AS u, n_tup_hot_upd::text AS hot,
            pg_current_wal_lsn()::text AS lsn
     FROM pg_stat_user_tables WHERE relname = 'tasks'`,
  );
  const r = rows[0];
  if (!r) throw new Error("no statistics for tasks");
  return { indexBytes: Number(r.i), heapBytes: Number(r.h), updates: Number(r.u), hotUpdates: Number(r.hot), walLsn: r.lsn };
}

async function runArm(arm: Arm): Promise<string> {
  const db = await createTestDatabase("clawfleet_bench_");
  const pool = new pg.Pool({ connectionString: db.url, max: CLIENTS + 1 });
  try {
    await migrate(pool, { dir: arm.migrations });
    await pool.query(
      // Ten days of one agent's tasks, a tenth of them today.
      `INSERT INTO tasks (id, agent, input, prompt_version, status, fence, started_at, created_at)
       SELECT gen_random_uuid(), 'order-router', '{"order_id":"ORD-1042"}'::jsonb, 'pv-1',
              CASE WHEN g <= $2 THEN 'running' ELSE 'succeeded' END, 1, now(), now() - (g % 10) * interval '1 day'
       FROM generate_series(1, $1::int) AS g`,
      [TASKS, RUNNING],
    );
    await pool.query("VACUUM ANALYZE tasks");
    await pool.query("ALTER TABLE tasks SET (autovacuum_enabled = false)");
    await pool.query("CHECKPOINT");
    const ids = (await pool.query<{ id: string }>("SELECT id FROM tasks WHERE status = 'running' ORDER BY id")).rows.map((r) => r.id);
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => pool.connect()));
    let run: Run;
    try {
      run = await appendSteps(arm, pool, clients, ids);
    } finally {
      // Ended, not returned: a backend reports its table statistics as it ends.
      for (const c of clients) c.release(true);
    }
    const counts = await figuresOf(arm, pool, run);
    await pool.query("VACUUM ANALYZE tasks");
    const store = new PgTaskStore(pool);
    const day = new Date(new Date().toISOString().slice(0, 10)).toISOString();
    const capMs: number[] = [];
    for (let i = 0; i < 25; i++) {
      const t0 = performance.now();
      await store.agentCostSince("order-router", day);
      if (i >= 5) capMs.push(performance.now() - t0);
    }
    capMs.sort((a, b) => a - b);
    return `${counts}; the daily cap's sum over today's ${Math.ceil(TASKS / 10)} tasks, median ${percentile(capMs, 50).toFixed(2)} ms`;
  } finally {
    await pool.end();
    await db.drop();
  }
}

/** What an arm's checkpoints left to read once its backends have ended. */
interface Run {
  pids: number[];
  start: Sizes;
  cpuBefore: Array<number | undefined>;
  cpuAfter: Array<number | undefined>;
  total: number;
}

/** The arm's checkpoints, from every client at once, for --seconds. */
async function appendSteps(arm: Arm, pool: pg.Pool, clients: pg.PoolClient[], ids: string[]): Promise<Run> {
  const pids = await Promise.all(clients.map(async (c) => Number((await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid)));
  const start = await sizes(pool);
  const cpuBefore = pids.map(cpuMsOf);
  const until = performance.now() + SECONDS * 1000;
  const counts = await Promise.all(
    clients.map(async (client, c) => {
      // Each client its own tasks, so that no two write one task's same step.
      const mine = ids.filter((_, i) => i % CLIENTS === c);
      const steps = new Map<string, number>();
      let n = 0;
      while (performance.now() < until) {
        const id = mine[n % mine.length] as string;
        const step = (steps.get(id) ?? 0) + 1;
        steps.set(id, step);
        const llm = step % 2 === 1;
        await client.query({
          name: `checkpoint-${arm.name}`,
          text: arm.sql,
          values: [[id], [1], [step], [llm ? "llm" : "tool"], [1], [llm ? LLM_DATA : TOOL_DATA], [llm ? 310 : 0], [llm ? 42 : 0], [0], [0], [llm ? "0.00156" : "0"]],
        });
        n++;
      }
      return n;
    }),
  );
  return { pids, start, cpuBefore, cpuAfter: pids.map(cpuMsOf), total: counts.reduce((a, b) => a + b, 0) };
}

/** The arm's figures, read once every backend of its run has ended. */
async function figuresOf(arm: Arm, pool: pg.Pool, run: Run): Promise<string> {
  for (let waited = 0; waited < 10_000; waited += 100) {
    const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[])", [run.pids]);
    if (rows[0]?.n === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { start, total } = run;
  const end = await sizes(pool);
  const wal = await pool.query<{ b: string }>("SELECT pg_wal_lsn_diff($1, $2)::text AS b", [end.walLsn, start.walLsn]);
  const sum = (ms: Array<number | undefined>) => ms.reduce<number>((a, b) => a + (b ?? 0), 0);
  const cpu = [...run.cpuBefore, ...run.cpuAfter].every((v) => v !== undefined)
    ? `${(((sum(run.cpuAfter) - sum(run.cpuBefore)) / total) * 1000).toFixed(0)} µs`
    : "n/a (Postgres is not on this machine)";
  const updates = end.updates - start.updates;
  const hot = end.hotUpdates - start.hotUpdates;
  const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
  return [
    `${arm.name.padEnd(6)} ${(total / SECONDS).toFixed(0).padStart(5)} checkpoints/s`,
    `backends' CPU per checkpoint ${cpu}`,
    `heap-only ${updates > 0 ? ((100 * hot) / updates).toFixed(1) : "n/a"} % of ${updates} updates (${total} checkpoints)`,
    `WAL ${(Number(wal.rows[0]?.b) / total).toFixed(0)} B per checkpoint`,
    `indexes of tasks ${kib(start.indexBytes)} → ${kib(end.indexBytes)}, heap ${kib(start.heapBytes)} → ${kib(end.heapBytes)}`,
  ].join("; ");
}

async function main(): Promise<void> {
  const before = migrationsBefore();
  try {
    const arms: Arm[] = [
      { name: "before", migrations: before, sql: APPEND_STEPS_SQL.replace(CHECKPOINT_UPDATED_AT, "now()") },
      { name: "after", migrations: migrationsDir(), sql: APPEND_STEPS_SQL },
    ];
    if (arms[0]?.sql === APPEND_STEPS_SQL) throw new Error("the statement before could not be made: CHECKPOINT_UPDATED_AT is not in APPEND_STEPS_SQL");
    console.log(`checkpoint row bench: ${CLIENTS} clients, ${RUNNING} running tasks among ${TASKS}, ${SECONDS} s per arm, ${ROUNDS} rounds; load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    for (let round = 1; round <= ROUNDS; round++) for (const arm of arms) console.log(`round ${round}: ${await runArm(arm)}`);
  } finally {
    fs.rmSync(before, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
