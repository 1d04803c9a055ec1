/**
 * Crash recovery: how long a task stands still after its planner is killed.
 *
 * A distributed cluster (one role per OS process, --planners planners, two
 * executors) on the local NATS, Redis and Postgres, against a separate
 * `clawfleet sim` process at a realistic model latency, with the DEFAULT lease
 * and reaper settings (CLAWFLEET_LEASE_TTL_MS 5000, reaper every 1000 ms). A
 * stream of order-router tasks keeps --in-flight tasks running. Then, --kills
 * times: pick a running task that has checkpointed at least one step, kill -9
 * its lease holder (and start a replacement process, as a Deployment would),
 * and measure the time from the kill to that task's next checkpoint written
 * under a newer fencing token, i.e. by another planner (steps.created_at in
 * Postgres; same machine clock as the kill), or to its finish under that token
 * when the checkpoints already held the final answer.
 *
 * Afterwards: routing effects beyond one per routed task, checkpointed steps
 * made again (a model request for a step after its checkpoint, a tool run with
 * a checkpointed idempotency key after it), and the model tokens the crashes
 * cost: what the sim billed minus what the checkpoints kept, as % of the billed.
 *
 *   npx tsx bench/recovery.ts [--kills 50] [--planners 3] [--latency-ms 400] [--in-flight 6]
 *
 * Isolation: a fresh database and namespace, removed afterwards.
 */
import { parseArgs } from "node:util";
import pg from "pg";
import { orderIds } from "../examples/order-router/lib/data";
import {
  Cluster,
  drillEvidence,
  percentile,
  RUN_FROM_SOURCE,
  simStats,
  sleep,
  startSim,
  startStandardCluster,
  stopProc,
  submit,
  waitTerminal,
  type Proc,
} from "../testkit/crash";
import { createScratch, NATS_TEST_URL, REDIS_TEST_URL } from "../testkit/scratch";

const { values: args } = parseArgs({
  options: {
    kills: { type: "string", default: "50" },
    planners: { type: "string", default: "3" },
    "latency-ms": { type: "string", default: "400" },
    "in-flight": { type: "string", default: "6" },
  },
});
const KILLS = Number(args.kills);
const PLANNERS = Number(args.planners);
const LATENCY_MS = Number(args["latency-ms"]);
const IN_FLIGHT = Number(args["in-flight"]);
if (![KILLS, PLANNERS, LATENCY_MS, IN_FLIGHT].every((n) => Number.isInteger(n) && n >= 0) || PLANNERS < 2) {
  throw new Error("--kills, --latency-ms and --in-flight take non-negative integers, --planners at least 2");
}

const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

interface Sample {
  task: string;
  victim: string;
  recoveryMs: number;
}

async function main(): Promise<void> {
  const scratch = await createScratch("benchrecovery", "clawfleet_bench_");
  const { namespace } = scratch;
  const dbUrl = scratch.db.url;

  let sim: (Proc & { url: string }) | undefined;
  let cluster: Cluster | undefined;
  let feeding = true;
  let feeder: Promise<void> = Promise.resolve();
  const db = new pg.Pool({ connectionString: dbUrl, max: 3 });
  try {
    sim = await startSim({ latencyMs: LATENCY_MS });
    // Default lease and reaper settings: only the cluster's shape is chosen here.
    cluster = new Cluster({ namespace, databaseUrl: dbUrl, redisUrl: REDIS_TEST_URL, natsUrl: NATS_TEST_URL, simUrl: sim.url, env: { CLAWFLEET_SHUTDOWN_GRACE_MS: "5000" } });
    const c = cluster;
    log(`starting the cluster (${PLANNERS} planners, 2 executors; ${RUN_FROM_SOURCE ? "sources via tsx" : "dist/"})`);
    const base = await startStandardCluster(c, { planners: PLANNERS, executors: 2 });

    // The task stream: keep IN_FLIGHT tasks unfinished.
    const orders = orderIds();
    const submitted = new Map<string, string>();
    let next = 0;
    feeder = (async () => {
      while (feeding) {
        const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE status IN ('queued', 'running')");
        for (let i = rows[0]?.n ?? 0; i < IN_FLIGHT && feeding; i++) {
          const order = orders[next++ % orders.length] as string;
          submitted.set(await submit(base, { order_id: order }), order);
        }
        await sleep(250);
      }
    })().catch((err: unknown) => {
      if (feeding) log(`feeder stopped: ${err instanceof Error ? err.message : String(err)}`);
    });

    const planners = Array.from({ length: PLANNERS }, (_, i) => `planner-${i + 1}`);
    const ready = new Set(planners.map((n) => c.get(n).nodeId));
    const samples: Sample[] = [];
    const started = Date.now();
    while (samples.length < KILLS) {
      // A running task, a step or more into its run, whose holder is a live, ready planner. Tasks that
      // already lost attempts to earlier kills are spared: CLAWFLEET_MAX_ATTEMPTS (5) would dead-letter them.
      const { rows } = await db.query<{ id: string; lease_owner: string; fence: string }>(
        "SELECT id, lease_owner, fence FROM tasks WHERE status = 'running' AND steps >= 1 AND lease_owner IS NOT NULL AND attempts <= 2 ORDER BY attempts, random()",
      );
      const target = rows.find((r) => ready.has(r.lease_owner) && c.byNodeId(r.lease_owner));
      if (!target) {
        await sleep(100);
        continue;
      }
      const victim = c.byNodeId(target.lease_owner) as Proc;
      const fence = Number(target.fence);
      const killedAt = Date.now();
      await c.killAndReplace(victim.name, (nodeId) => ready.add(nodeId));

      const deadline = Date.now() + 120_000;
      let recovered: number | undefined;
      let finished = false;
      while (recovered === undefined && Date.now() < deadline) {
        // The successor's first durable progress: a checkpoint, or the finish itself when the checkpoints
        // already held the final answer (the holder died between its last checkpoint and finishing).
        const r = await db.query<{ at: number | null; status: string; fence: string }>(
          `SELECT (extract(epoch FROM least(
                    (SELECT min(created_at) FROM steps WHERE task_id = $1 AND fence > $2),
                    CASE WHEN fence > $2 THEN finished_at END)) * 1000)::float8 AS at, status, fence
           FROM tasks WHERE id = $1`,
          [target.id, fence],
        );
        const row = r.rows[0];
        if (row?.at !== null && row?.at !== undefined) recovered = row.at - killedAt;
        else if (row && row.status !== "running" && row.status !== "queued" && Number(row.fence) === fence) {
          finished = true; // it finished just before the kill: not a kill of a running task's holder
          break;
        } else await sleep(50);
      }
      if (finished) continue;
      if (recovered === undefined) {
        process.exitCode = 1;
        throw new Error(`task ${target.id} did not recover within 120 s of killing ${victim.nodeId}`);
      }
      samples.push({ task: target.id, victim: victim.nodeId, recoveryMs: recovered });
      log(`kill ${samples.length}/${KILLS}: ${victim.nodeId} held ${target.id.slice(0, 8)}; next checkpoint by another planner after ${Math.round(recovered)} ms`);
    }
    const killPhaseS = (Date.now() - started) / 1000;

    feeding = false;
    await feeder;
    const ids = [...submitted.keys()];
    log(`${KILLS} kills done; waiting for ${ids.length} tasks to finish`);
    const tasks = await waitTerminal(db, ids, 300_000);
    await sleep(500);

    const { problems, checkpoints, requests, redone } = await drillEvidence(db, sim.url, c, submitted, tasks);
    const { rows: dupRows } = await db.query<{ n: number }>(
      "SELECT coalesce(sum(n - 1), 0)::int AS n FROM (SELECT count(*) AS n FROM order_routes GROUP BY task_id) x",
    );
    const billed = await simStats(sim.url);
    const { rows: kept } = await db.query<{ t: string }>("SELECT coalesce(sum(input_tokens + output_tokens), 0) AS t FROM tasks WHERE id = ANY($1::uuid[])", [ids]);
    const billedTokens = billed.input_tokens + billed.output_tokens;
    const keptTokens = Number(kept[0]?.t ?? 0);
    const extraPct = billedTokens > 0 ? (100 * (billedTokens - keptTokens)) / billedTokens : 0;
    const llmCheckpoints = checkpoints.filter((x) => x.kind === "llm").length;

    const sorted = samples.map((s) => s.recoveryMs).sort((a, b) => a - b);
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const table = [
      `| crash recovery (kill -9 of the lease holder), ${KILLS} kills, ${PLANNERS} planners, sim ${LATENCY_MS} ms/call | |`,
      "|---|---|",
      `| kill → next checkpoint by another planner, p50 | ${s(percentile(sorted, 50))} |`,
      `| p90 | ${s(percentile(sorted, 90))} |`,
      `| max | ${s(sorted.at(-1) ?? NaN)} |`,
      `| min | ${s(sorted[0] ?? NaN)} |`,
      `| tasks run / wrong or unfinished | ${ids.length} / ${problems.length} |`,
      `| duplicate routing effects | ${dupRows[0]?.n ?? 0} |`,
      `| checkpointed steps made again | ${redone.length} |`,
      `| model requests / LLM checkpoints | ${requests.length} / ${llmCheckpoints} |`,
      `| tokens billed by the model / kept in checkpoints | ${billedTokens} / ${keptTokens} |`,
      `| extra tokens spent because of crashes | ${extraPct.toFixed(2)} % |`,
      `| kill phase | ${killPhaseS.toFixed(0)} s |`,
    ].join("\n");
    process.stdout.write(`\n${table}\n\nsettings: CLAWFLEET_LEASE_TTL_MS 5000 (default), renew every 1667 ms, reaper every 1000 ms, 2 unleased sweeps\n`);
    if (problems.length > 0 || redone.length > 0) {
      process.stdout.write(`\nPROBLEMS:\n${JSON.stringify({ problems, redone }, null, 2)}\n`);
      process.exitCode = 1;
    }
  } finally {
    feeding = false;
    await feeder;
    if (process.exitCode === 1 && cluster && process.env.CLAWFLEET_CRASH_LOGS) cluster.dump(namespace);
    await cluster?.stopAll();
    if (sim) await stopProc(sim);
    await db.end().catch(() => undefined);
    await scratch.remove();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/recovery: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
