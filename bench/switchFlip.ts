/**
 * Kill switch flips: how long after `PUT /v1/switches/agent/order-router
 * {"paused": true}` has answered can a planner still start a task of that agent?
 *
 * The distributed layout (one role per OS process, two planner processes) on the
 * local NATS, Redis and Postgres, the simulated model at --latency-ms per answer.
 * A steady stream of tasks (--rate per second, order-router and, a third of them,
 * a second agent `echo` with no tools) keeps both planners busy. Then, --flips
 * times: pause order-router, hold the pause for --hold-ms, lift it, let the
 * backlog drain for --hold-ms. For each pause: the time from the PUT's answer to
 * the last start of an order-router task (its `started_at`, the claim, in
 * Postgres; same machine clock) before the lift was sent, 0 when none started
 * after the answer. And for each lift: from its answer to the first start of a
 * queued order-router task (the lift's wake-ups, and the board's refresh).
 *
 *   TSX_TSCONFIG_PATH=examples/tsconfig.json npx tsx bench/switchFlip.ts [--flips 24] [--rate 12] [--hold-ms 1500] [--latency-ms 20] [--layout distributed|embedded]
 *
 * `--layout embedded` runs every role in this process on PGlite instead (one planner).
 * Isolation: a fresh database and namespace (distributed), removed afterwards.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { startNode, type ClawfleetNode } from "../app/node";
import { loadConfig } from "../src/config";
import { EXECUTOR_ROLES, startNodeProcess, stopAll, submitTask, tempDir, type NodeProcess } from "../testkit/cluster";
import { percentile } from "../testkit/crash";
import { EXAMPLES_ENV, ORDER_ROUTER_PROMPTS } from "../testkit/examples";
import { createScratch, uniqueId } from "../testkit/scratch";

const { values: args } = parseArgs({
  options: {
    flips: { type: "string", default: "24" },
    rate: { type: "string", default: "12" },
    "hold-ms": { type: "string", default: "1500" },
    "latency-ms": { type: "string", default: "20" },
    layout: { type: "string", default: "distributed" },
  },
});
const FLIPS = Number(args.flips);
const RATE = Number(args.rate);
const HOLD_MS = Number(args["hold-ms"]);
const LATENCY_MS = Number(args["latency-ms"]);
const LAYOUT = args.layout;
if (![FLIPS, RATE, HOLD_MS, LATENCY_MS].every((n) => Number.isInteger(n) && n >= 0) || FLIPS < 1 || RATE < 1 || (LAYOUT !== "distributed" && LAYOUT !== "embedded")) {
  throw new Error("--flips, --rate, --hold-ms and --latency-ms take non-negative integers (--flips and --rate at least 1); --layout is distributed or embedded");
}

const AGENT = "order-router";
const ECHO = ["---", "name: echo", "description: Says it back.", "tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 256}", "default_tier: main", "---", "Answer in one line."].join("\n");

const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Cluster {
  base: string;
  query<R extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<R[]>;
  describe: string;
  close(): Promise<void>;
}

async function distributed(env: Record<string, string>): Promise<Cluster> {
  const scratch = await createScratch("flip", "clawfleet_bench_");
  const nodes: NodeProcess[] = [];
  const db = new pg.Pool({ connectionString: scratch.db.url, max: 2 });
  const close = async () => {
    await db.end().catch(() => undefined);
    await stopAll(nodes);
    await scratch.remove();
  };
  // As testkit's startRoleProcesses, with a longer start-up allowance (a loaded machine) and every process that came
  // up kept for the stop, even when another one did not.
  const start = async (name: string, services: string) => {
    const node = await startNodeProcess({ name, env: { ...scratch.env(services), ...env, LOG_LEVEL: "warn" }, timeoutMs: 180_000 });
    nodes.push(node);
    return node;
  };
  try {
    await start("checkpoint", "checkpoint");
    const started = await Promise.allSettled([
      start("api", "api,intake,metrics"),
      start("rate-gateway", "rate-gateway"),
      start("executor", EXECUTOR_ROLES),
      start("planner-1", "planner"),
      start("planner-2", "planner"),
    ]);
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const api = nodes.find((n) => n.name === "api");
    return {
      base: `http://127.0.0.1:${api?.port}`,
      query: async (sql, values) => (await db.query(sql, values)).rows,
      describe: `distributed: ${nodes.map((n) => n.name).join(", ")} (one OS process each; Postgres, Redis, NATS)`,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

async function embedded(env: Record<string, string>): Promise<Cluster> {
  const node: ClawfleetNode = await startNode(
    loadConfig({ ...process.env, ...EXAMPLES_ENV, ...env, PORT: "0", CLAWFLEET_DATA_DIR: "memory://", CLAWFLEET_NAMESPACE: uniqueId("flip"), CLAWFLEET_AUTH: "off", LOG_LEVEL: "warn" }),
  );
  const { pool } = await node.resources.database();
  return {
    base: `http://127.0.0.1:${node.port}`,
    query: async (sql, values) => (await pool.query(sql, values)).rows,
    describe: "embedded: every role in this process (PGlite, in-process queue), one planner",
    close: () => node.stop(),
  };
}

async function put(base: string, paused: boolean): Promise<number> {
  sentAt = Date.now();
  const r = await fetch(`${base}/v1/switches/agent/${AGENT}`, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ paused }) });
  const answeredAt = Date.now();
  if (r.status !== 200) throw new Error(`PUT answered ${r.status}: ${await r.text()}`);
  return answeredAt;
}

/** When the last PUT was sent. */
let sentAt = 0;

const ms = (v: Date | string | null | undefined) => (v === null || v === undefined ? undefined : new Date(v).getTime());

async function main(): Promise<void> {
  const prompts = tempDir("clawfleet-flip-prompts-");
  fs.copyFileSync(path.join(ORDER_ROUTER_PROMPTS, `${AGENT}.md`), path.join(prompts.dir, `${AGENT}.md`));
  fs.writeFileSync(path.join(prompts.dir, "echo.md"), ECHO);
  const env = { ...EXAMPLES_ENV, CLAWFLEET_PROMPTS_DIR: prompts.dir, CLAWFLEET_SIM_LATENCY_MS: String(LATENCY_MS), CLAWFLEET_AUTH: "off" };
  const cluster = LAYOUT === "distributed" ? await distributed(env) : await embedded(env);
  log(`cluster up (${cluster.describe})`);

  let streaming = true;
  let submitted = 0;
  let refused = 0;
  const stream = (async () => {
    const every = 1000 / RATE;
    for (let i = 0; streaming; i++) {
      const t = performance.now();
      const body = i % 3 === 2 ? { agent: "echo", input: `hello ${i}` } : { agent: AGENT, input: { order_id: `ORD-${1001 + (i % 40)}` } };
      void submitTask(cluster.base, body).then(
        (s) => (s.status === 202 ? submitted++ : refused++),
        () => refused++,
      );
      await sleep(Math.max(0, every - (performance.now() - t)));
    }
  })();

  const late: number[] = [];
  const lateTasks: number[] = [];
  const resume: number[] = [];
  const startedLifted: number[] = [];
  const gapBefore: number[] = [];
  try {
    await sleep(3_000);
    for (let flip = 1; flip <= FLIPS; flip++) {
      const pausedAt = await put(cluster.base, true);
      const pauseSentAt = sentAt;
      await sleep(HOLD_MS);
      const liftSentAt = Date.now();
      const liftedAt = await put(cluster.base, false);
      const [after] = await cluster.query<{ last: Date | null; n: number }>(
        "SELECT max(started_at) AS last, count(*)::int AS n FROM tasks WHERE agent = $1 AND started_at > $2 AND started_at < $3",
        [AGENT, new Date(pausedAt), new Date(liftSentAt)],
      );
      const [before] = await cluster.query<{ last: Date | null }>("SELECT max(started_at) AS last FROM tasks WHERE agent = $1 AND started_at <= $2", [AGENT, new Date(pauseSentAt)]);
      const lastBefore = ms(before?.last);
      if (lastBefore !== undefined) gapBefore.push(pauseSentAt - lastBefore);
      const last = ms(after?.last);
      late.push(last === undefined ? 0 : last - pausedAt);
      lateTasks.push(after?.n ?? 0);
      const [waiting] = await cluster.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE agent = $1 AND status = 'queued'", [AGENT]);
      await sleep(HOLD_MS);
      const [first] = await cluster.query<{ first: Date | null; n: number }>(
        "SELECT min(started_at) AS first, count(*)::int AS n FROM tasks WHERE agent = $1 AND started_at >= $2",
        [AGENT, new Date(liftedAt)],
      );
      const firstMs = ms(first?.first);
      if (firstMs !== undefined) resume.push(firstMs - liftedAt);
      startedLifted.push(first?.n ?? 0);
      log(
        `flip ${flip}: last start ${late.at(-1)} ms after the pause's answer (${lateTasks.at(-1)} started after it); ${waiting?.n ?? 0} queued at the lift; ` +
          `first start ${firstMs === undefined ? "-" : `${firstMs - liftedAt} ms`} after the lift's answer, ${first?.n ?? 0} started while lifted`,
      );
    }
  } finally {
    streaming = false;
    await stream;
    await cluster.close().catch((err: unknown) => log(`stop failed: ${String(err)}`));
    prompts.remove();
  }

  const sorted = [...late].sort((a, b) => a - b);
  const resumeSorted = [...resume].sort((a, b) => a - b);
  console.log(`switch flips: pause and lift agent ${AGENT} ${FLIPS} times under a steady stream (${cluster.describe})`);
  console.log(`  stream: ${RATE} tasks/s (two thirds ${AGENT}, a third echo), ${submitted} accepted, ${refused} refused; sim latency ${LATENCY_MS} ms; each pause held ${HOLD_MS} ms`);
  console.log(
    `  pause -> last ${AGENT} start anywhere, from the PUT's answer: p50 ${percentile(sorted, 50)} ms, max ${sorted.at(-1) ?? NaN} ms ` +
      `(${lateTasks.filter((n) => n > 0).length} of ${FLIPS} pauses had any start after the answer; ${lateTasks.reduce((a, b) => a + b, 0)} tasks in all)`,
  );
  console.log(`  lift -> first ${AGENT} start, from the PUT's answer: p50 ${percentile(resumeSorted, 50)} ms, max ${resumeSorted.at(-1) ?? NaN} ms (${resume.length} lifts with a start)`);
  const gapSorted = [...gapBefore].sort((a, b) => a - b);
  console.log(`  last ${AGENT} start before each pause was sent: p50 ${percentile(gapSorted, 50)} ms, max ${gapSorted.at(-1) ?? NaN} ms before it (starts were under way)`);
  console.log(`  ${AGENT} tasks started while lifted: ${startedLifted.reduce((a, b) => a + b, 0)} over ${FLIPS} lifts (the stream was flowing)`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
