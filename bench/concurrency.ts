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
 * in-flight / (model calls per task x latency), or the sim's rate limit (per model) / that model's calls
 * per task when lower. Throughput is counted in model calls: with thousands of tasks in flight they move
 * in step and end together, so tasks ended in a window say little. And each role's CPU in that window in
 * the units `clawfleet plan` sizes roles by: the planner's and the checkpoint role's per step checkpointed,
 * the executor's per tool call, the rate gateway's per model call (the calls the sim answered 200); and Redis
 * commands per model call: those the cluster's clients sent (MONITOR, for --monitor-s seconds once the
 * planner holds its tasks steady; 0 skips it), and all the server ran (its INFO count, with the commands its
 * scripts ran).
 * Two runs: a generous sim rate limit (--generous-tasks 0 skips it: thousands of tasks at a generous
 * limit only measure the machine's CPU), then --limited-rpm, low enough that the limit binds
 * (--limited-tasks 0 skips it: at a latency longer than the window, tasks held and no step taken).
 *
 * --measure-s N stops measuring after N s of the steady window instead of waiting for every task.
 * --shutdown then sends SIGTERM to the planner holding its tasks and prints the time to its exit (against
 * the default grace period), the tasks' states right after (every one should be queued again, with no
 * lease owner and its attempt not counted), and a new planner's run to the last task.
 *
 *   TSX_TSCONFIG_PATH=examples/tsconfig.json npx tsx bench/concurrency.ts [--tasks 3000] [--latency-ms 2000]
 *     [--limited-rpm 6000] [--limited-tasks N] [--generous-tasks N] [--slots N] [--measure-s N] [--shutdown]
 *     [--profile dir]
 *
 * Isolation: each run its own database and namespace, removed afterwards.
 */
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import pg from "pg";
import { orderIds } from "../examples/order-router/lib/data";
import { EXECUTOR_ROLES, freePort, ORDER_ROUTER_SIM_POLICIES, packageResolutionEnv, ROOT, spawnCaptured } from "../testkit/cluster";
import { Cluster, sleep, submit, type Proc } from "../testkit/crash";
import { createScratch, NATS_TEST_URL, REDIS_TEST_URL } from "../testkit/scratch";
import { measuredEnv } from "./throughput/layouts";
import { cpuMs, rssOf, scriptsBySha, writeCalls } from "./throughput/meters";

const { values: args } = parseArgs({
  options: {
    tasks: { type: "string", default: "3000" },
    "latency-ms": { type: "string", default: "2000" },
    "generous-rpm": { type: "string", default: "1000000" },
    "limited-rpm": { type: "string", default: "6000" },
    /** Tasks of the rate-limited run; 0 skips it. @default --tasks */
    "limited-tasks": { type: "string" },
    /** Tasks of the generous run; 0 skips it. @default --tasks */
    "generous-tasks": { type: "string" },
    /** CLAWFLEET_PLANNER_SLOTS of the planner. @default the planner's own default */
    slots: { type: "string" },
    /** Seconds of the steady window after which a run stops measuring; 0 waits for every task. */
    "measure-s": { type: "string", default: "0" },
    /** After measuring, SIGTERM the planner holding its tasks, then let a new planner finish them all. */
    shutdown: { type: "boolean", default: false },
    "submit-concurrency": { type: "string", default: "32" },
    /** Seconds of the steady window MONITOR samples what clients send to Redis; 0: none (MONITOR slows Redis while on). */
    "monitor-s": { type: "string", default: "5" },
    /** Profiles every role's process (bench/throughput/cpuProfiler.cjs) into <dir>/<run>/<role>/, for bench/throughput/profileTop.ts. */
    profile: { type: "string" },
  },
});
const TASKS = Number(args.tasks);
const LIMITED_TASKS = Number(args["limited-tasks"] ?? args.tasks);
const GENEROUS_TASKS = Number(args["generous-tasks"] ?? args.tasks);
const LATENCY_MS = Number(args["latency-ms"]);
const SUBMIT_CONCURRENCY = Number(args["submit-concurrency"]);
const MEASURE_S = Number(args["measure-s"]);
const MONITOR_MS = Number(args["monitor-s"]) * 1000;
const SLOTS = args.slots === undefined ? undefined : Number(args.slots);
if (![TASKS, LATENCY_MS, SUBMIT_CONCURRENCY, Number(args["generous-rpm"]), Number(args["limited-rpm"]), SLOTS ?? 1].every((n) => Number.isInteger(n) && n > 0)) {
  throw new Error("every option takes a positive integer");
}
if (![GENEROUS_TASKS, LIMITED_TASKS, MEASURE_S].every((n) => Number.isInteger(n) && n >= 0)) throw new Error("--generous-tasks, --limited-tasks and --measure-s take an integer >= 0");
if (GENEROUS_TASKS + LIMITED_TASKS === 0) throw new Error("--generous-tasks 0 and --limited-tasks 0 leave nothing to run");
if (LIMITED_TASKS === 0 && args.shutdown === true) throw new Error("--shutdown stops the planner of the binding run: --limited-tasks must not be 0");
/** The planner's SIGTERM grace period (its default, CLAWFLEET_SHUTDOWN_GRACE_MS). */
const GRACE_MS = 25_000;

const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const MB = 1_048_576;

interface Sample {
  at: number;
  inFlight: number;
  rssBytes: number;
  done: number;
  /** Model calls the sim has received so far (refused ones included), and by model. */
  calls: number;
  /** Model calls the sim has answered 200 so far. */
  answered: number;
  byModel: Record<string, number>;
  /** CPU ms each role's process has used so far (/proc), by role. */
  cpu: Record<Role, number>;
  /** Write system calls each role's process has made so far (/proc/<pid>/io), by role. */
  writes: Record<Role, number>;
  /** Steps checkpointed so far: model turns and tool results. */
  steps: { llm: number; tool: number };
  /** Commands the Redis server has processed so far (INFO stats), from every client. */
  redisCommands: number;
}

/** The cluster's processes whose CPU is read: the roles `clawfleet plan` sizes, and the checkpoint role. */
const ROLES = ["planner", "rate-gateway", "executor", "checkpoint"] as const;
type Role = (typeof ROLES)[number];

/** CPU in the steady window, in the units `clawfleet plan` sizes roles by (app/client/plan.ts). */
interface RoleCost {
  plannerMsPerStep: number;
  executorMsPerToolCall: number;
  gatewayMsPerModelCall: number;
  checkpointMsPerStep: number;
  /** Each role's share of a core over the window (its CPU ms per ms). */
  cores: Record<Role, number>;
  /** Write system calls (socket writes, mostly) each role made per model call answered over the window. */
  writesPerModelCall: Record<Role, number>;
  /** Redis commands per model call, the server's count over the window: with those its scripts ran (anything else using it included). */
  redisPerModelCall: number;
  /** What they are counted over. */
  steps: number;
  toolCalls: number;
  modelCalls: number;
}

interface ShutdownFigures {
  /** Leases the planner held when it was sent SIGTERM. */
  inFlightAtSignal: number;
  /** From SIGTERM to the process's exit. */
  exitS: number;
  exitCode: number | null;
  /** Tasks per status right after the exit. */
  statusAfter: Record<string, number>;
  /** Tasks still holding a lease owner after the exit (none should). */
  leaseOwnersLeft: number;
  /** Of the tasks running at the signal: their attempts before and after (a hand-back does not count one). */
  runningAtSignal: number;
  attemptsCounted: number;
  /** The new planner's run to the last task. */
  finishS: number;
  doneAfter: number;
  failedAfter: number;
  maxAttempts: number;
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
  /** Model calls per second the sim answered in the steady window, and by model (the sim's --rpm is per model). */
  callRate: number;
  callRateByModel: Record<string, number>;
  latencyBound: number;
  rateBound: number;
  failed: number;
  done: number;
  wallS: number;
  cost: RoleCost;
  /** The commands clients sent, from MONITOR over a few seconds of the run; `inWindow`: inside the steady window. */
  sent?: SentCommands & { inWindow: boolean };
  /** Why there is no sample of the commands clients sent, when --monitor-s asked for one. */
  notSent?: string;
  shutdown?: ShutdownFigures;
}

/** What MONITOR saw clients send (the commands scripts ran inside Redis left out) over `seconds`, and the sim's model calls meanwhile. */
interface SentCommands {
  /** When the sample began and ended (epoch ms), to tell whether it lay inside the steady window. */
  from: number;
  to: number;
  /** Model calls answered 200 while it ran. */
  modelCalls: number;
  byCommand: Map<string, number>;
}

/**
 * Every command Redis runs while MONITOR is on, the commands of scripts told apart (their source is `lua`):
 * what the cluster's clients sent, by command, between two reads of the sim's count `ms` apart. Only commands
 * naming the cluster's namespace (its keys, streams and groups) count: not the bench's own INFO, nor any other
 * client of the same Redis. MONITOR slows Redis while it runs, so only a sample.
 */
async function sentCommands(simUrl: string, namespace: string, ms: number): Promise<SentCommands> {
  const scripts = scriptsBySha();
  const monitor = await new Redis(REDIS_TEST_URL, { lazyConnect: true }).monitor();
  // ioredis can take a line MONITOR sent after the sample for a reply it never asked for, and says so as an
  // error on this connection: the sample's counts are taken by then, and the run must not end on it.
  let failed: Error | undefined;
  monitor.on("error", (err: unknown) => void (failed ??= err instanceof Error ? err : new Error(JSON.stringify(err))));
  try {
    const byCommand = new Map<string, number>();
    let counting = false;
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      if (!counting || source === "lua" || !args.some((a) => a.includes(namespace))) return;
      const command = (args[0] ?? "").toLowerCase();
      // A script call is told by its script: the heartbeat's, a reserve's and a settle's cost differently.
      const name = command === "evalsha" ? `evalsha ${scripts.get(args[1] ?? "") ?? "?"}` : command;
      byCommand.set(name, (byCommand.get(name) ?? 0) + 1);
    });
    const before = answeredOf(await simCounts(simUrl));
    counting = true;
    const from = Date.now();
    await sleep(ms);
    const to = Date.now();
    counting = false;
    const after = answeredOf(await simCounts(simUrl));
    if (failed !== undefined) throw failed;
    return { from, to, modelCalls: after - before, byCommand };
  } finally {
    monitor.disconnect();
  }
}

/**
 * Model calls answered at a steady rate: the planner has held its tasks for two model latencies (a call answered
 * now was asked inside the window, not in the ramp before it), and the last two seconds answered within 10 % of
 * the two before. Sampled in the ramp, commands counted now would be set against the answers of calls asked
 * before, at a lower rate.
 */
function callsSteady(samples: readonly Pick<Sample, "at" | "answered" | "inFlight">[]): boolean {
  const now = samples[samples.length - 1];
  if (!now) return false;
  const peak = Math.max(...samples.map((x) => x.inFlight));
  const steadyFrom = samples.find((x) => x.inFlight >= 0.9 * peak);
  if (!steadyFrom || now.at - steadyFrom.at < 2 * LATENCY_MS) return false;
  const at = (ms: number) => [...samples].reverse().find((x) => x.at <= now.at - ms);
  const [twoAgo, fourAgo] = [at(2_000), at(4_000)];
  if (!twoAgo || !fourAgo) return false;
  const [recent, before] = [now.answered - twoAgo.answered, twoAgo.answered - fourAgo.answered];
  return before > 0 && Math.abs(recent - before) <= 0.1 * before;
}

async function stepsSoFar(db: Db): Promise<{ llm: number; tool: number }> {
  const r = await db.query<{ llm: number; tool: number }>("SELECT count(*) FILTER (WHERE kind = 'llm')::int AS llm, count(*) FILTER (WHERE kind = 'tool')::int AS tool FROM steps");
  return { llm: r.rows[0]?.llm ?? 0, tool: r.rows[0]?.tool ?? 0 };
}

/** The roles' CPU between two samples, per step, tool call and model call (model calls: the sim's count). */
function roleCost(first: Sample, last: Sample): RoleCost {
  const used = (role: Role) => last.cpu[role] - first.cpu[role];
  const llm = last.steps.llm - first.steps.llm;
  const toolCalls = last.steps.tool - first.steps.tool;
  const steps = llm + toolCalls;
  const modelCalls = last.answered - first.answered;
  const per = (ms: number, n: number) => (n > 0 ? ms / n : NaN);
  return {
    plannerMsPerStep: per(used("planner"), steps),
    executorMsPerToolCall: per(used("executor"), toolCalls),
    gatewayMsPerModelCall: per(used("rate-gateway"), modelCalls),
    checkpointMsPerStep: per(used("checkpoint"), steps),
    redisPerModelCall: per(last.redisCommands - first.redisCommands, modelCalls),
    cores: Object.fromEntries(ROLES.map((r) => [r, used(r) / Math.max(1, last.at - first.at)])) as Record<Role, number>,
    writesPerModelCall: Object.fromEntries(ROLES.map((r) => [r, per(last.writes[r] - first.writes[r], modelCalls)])) as Record<Role, number>,
    steps,
    toolCalls,
    modelCalls,
  };
}

async function redisCommands(redis: Redis): Promise<number> {
  const info = await redis.info("stats");
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN);
}

async function leasesHeld(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const line = text.split("\n").find((l) => l.startsWith("clawfleet_leases_held"));
  return line === undefined ? 0 : Number(line.split(/\s+/).pop());
}

/** The sim's counts (`GET /_sim/stats`): requests in all, by model, and answers by status. */
interface SimCounts {
  requests: number;
  by_model: Record<string, number>;
  responses_by_status: Record<string, number>;
}

async function simCounts(url: string): Promise<SimCounts> {
  return (await (await fetch(`${url}/_sim/stats`, { signal: AbortSignal.timeout(5_000) })).json()) as SimCounts;
}

/** Model calls the sim answered 200: the calls made, not those its rate limit refused. */
const answeredOf = (c: SimCounts): number => c.responses_by_status["200"] ?? 0;

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

type Db = pg.Pool;

async function progress(db: Db): Promise<{ done: number; failed: number }> {
  const r = await db.query<{ done: string; failed: string }>(
    "SELECT count(*) FILTER (WHERE status IN ('succeeded','failed','cancelled')) AS done, count(*) FILTER (WHERE status = 'failed') AS failed FROM tasks",
  );
  return { done: Number(r.rows[0]?.done ?? 0), failed: Number(r.rows[0]?.failed ?? 0) };
}

/**
 * Waits until every task has ended, failing the run when for 90 s no task ends and no model call is made
 * (with the rate limit binding, tasks move in step and may all end late, together).
 */
async function awaitAllDone(db: Db, simUrl: string, total: number): Promise<{ done: number; failed: number }> {
  const started = Date.now();
  let last = { key: "", at: Date.now() };
  for (let i = 1; ; i++) {
    const [p, calls] = await Promise.all([progress(db), simCounts(simUrl).then((c) => c.requests)]);
    if (p.done >= total) return p;
    const key = `${p.done}/${calls}`;
    if (key !== last.key) last = { key, at: Date.now() };
    if (Date.now() - last.at > 90_000) throw new Error(`no task finished and no model call made for 90 s (done ${p.done}/${total})`);
    if (Date.now() - started > 60 * 60_000) throw new Error("tasks not done within an hour");
    if (i % 20 === 0) log(`done ${p.done}/${total}, sim calls ${calls}`);
    await sleep(500);
  }
}

/**
 * SIGTERM to the planner while it holds its tasks: the time to its exit, what the tasks look like then
 * (every one handed back: queued, no lease owner, its attempt not counted), and a new planner that
 * finishes them all.
 */
async function shutdownPhase(cluster: Cluster, db: Db, simUrl: string, planner: Proc, total: number, inFlightAtSignal: number): Promise<ShutdownFigures> {
  const before = await db.query<{ id: string; attempts: number }>("SELECT id, attempts FROM tasks WHERE status = 'running'");
  const attemptsBefore = new Map(before.rows.map((r) => [r.id, r.attempts]));
  const t0 = performance.now();
  planner.signal("SIGTERM");
  const exit = await planner.exited;
  const exitS = (performance.now() - t0) / 1000;
  log(`planner exited ${exitS.toFixed(1)} s after SIGTERM (code ${String(exit.code)})`);
  const status = await db.query<{ status: string; n: string }>("SELECT status, count(*) AS n FROM tasks GROUP BY status ORDER BY status");
  const owners = await db.query<{ n: string }>("SELECT count(*) AS n FROM tasks WHERE lease_owner IS NOT NULL AND status NOT IN ('succeeded','failed','cancelled')");
  const after = await db.query<{ id: string; attempts: number }>("SELECT id, attempts FROM tasks WHERE id = ANY($1::uuid[])", [[...attemptsBefore.keys()]]);
  // A task's attempt is counted by the claim; a hand-back gives it back, so its count is one less than while it ran.
  const attemptsCounted = after.rows.filter((r) => r.attempts >= (attemptsBefore.get(r.id) ?? 0)).length;
  const next = await cluster.start("planner-2", "planner", SLOTS === undefined ? {} : { CLAWFLEET_PLANNER_SLOTS: String(SLOTS) });
  log(`new planner ${next.nodeId} ready; waiting for every task`);
  const t1 = performance.now();
  const end = await awaitAllDone(db, simUrl, total);
  const maxAttempts = await db.query<{ n: number | null }>("SELECT max(attempts) AS n FROM tasks");
  return {
    inFlightAtSignal,
    exitS,
    exitCode: exit.code,
    statusAfter: Object.fromEntries(status.rows.map((r) => [r.status, Number(r.n)])),
    leaseOwnersLeft: Number(owners.rows[0]?.n ?? 0),
    runningAtSignal: attemptsBefore.size,
    attemptsCounted,
    finishS: (performance.now() - t1) / 1000,
    doneAfter: end.done,
    failedAfter: end.failed,
    maxAttempts: maxAttempts.rows[0]?.n ?? 0,
  };
}

async function run(rpm: number, tasks: number, withShutdown: boolean): Promise<RunFigures> {
  // A role's process profiled, when --profile names a folder: written when the process exits.
  const profiled = (role: string): Record<string, string> =>
    args.profile === undefined ? {} : measuredEnv(path.resolve(args.profile, `rpm-${rpm}`, role), false);
  const scratch = await createScratch("benchconc", "clawfleet_bench_");
  const sim = await startSimWithLimit(rpm).catch(async (err: unknown) => {
    await scratch.remove();
    throw err;
  });
  const db = new pg.Pool({ connectionString: scratch.db.url, max: 2 });
  const redis = new Redis(REDIS_TEST_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
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
    const checkpoint = await cluster.start("checkpoint", "checkpoint", profiled("checkpoint"));
    const [api, gateway, executor] = await Promise.all([
      cluster.start("api", "api,intake,metrics", profiled("api")),
      cluster.start("rate-gateway", "rate-gateway", profiled("rate-gateway")),
      cluster.start("executor-1", EXECUTOR_ROLES, profiled("executor")),
    ]);
    if (!api) throw new Error("no api node");
    const base = `http://127.0.0.1:${api.port}`;
    log(`run rpm=${rpm}: submitting ${tasks} tasks`);
    const ids = await submitAll(base, tasks);
    // The planner starts on a full queue, with the default slots (unless --slots) and memory cap.
    const planner = await cluster.start("planner-1", "planner", { ...profiled("planner"), ...(SLOTS === undefined ? {} : { CLAWFLEET_PLANNER_SLOTS: String(SLOTS) }) });
    const rssBefore = rssOf(planner.pid);
    const pids: Record<Role, number> = { planner: planner.pid, "rate-gateway": gateway.pid, executor: executor.pid, checkpoint: checkpoint.pid };
    const cpuNow = () => Object.fromEntries(ROLES.map((r) => [r, cpuMs(pids[r])])) as Record<Role, number>;
    const writesNow = () => Object.fromEntries(ROLES.map((r) => [r, writeCalls(pids[r])])) as Record<Role, number>;
    log(`planner ready (rss ${Math.round(rssBefore / MB)} MB); sampling`);
    const started = Date.now();
    const samples: Sample[] = [];
    let failed = 0;
    let done = 0;
    let sent: Promise<SentCommands | undefined> | undefined;
    for (;;) {
      const [inFlight, counts, stats, steps, commands] = await Promise.all([
        leasesHeld(planner.port).catch(() => -1),
        progress(db),
        simCounts(sim.url),
        stepsSoFar(db),
        redisCommands(redis),
      ]);
      const calls = stats.requests;
      done = counts.done;
      failed = counts.failed;
      samples.push({ at: Date.now(), inFlight, rssBytes: rssOf(planner.pid), done, calls, answered: answeredOf(stats), byModel: stats.by_model, cpu: cpuNow(), writes: writesNow(), steps, redisCommands: commands });
      if (samples.length % 10 === 0) log(`in flight ${inFlight}, done ${done}/${ids.length}, sim calls ${calls}, rss ${Math.round(rssOf(planner.pid) / MB)} MB`);
      const peakSoFar = Math.max(...samples.map((x) => x.inFlight));
      // A sample of what clients send, once the planner holds its tasks (and not in the window's last seconds).
      // Held steady: the last four samples within 2 % of each other, at 90 % of the peak so far or more.
      const lastFour = samples.slice(-4).map((x) => x.inFlight);
      const steadyNow = lastFour.length === 4 && Math.min(...lastFour) >= 0.98 * Math.max(...lastFour) && inFlight >= 0.9 * peakSoFar;
      if (sent === undefined && MONITOR_MS > 0 && steadyNow && callsSteady(samples) && done < ids.length / 2) {
        // A failed sample is said, not fatal: the run's other figures stand.
        sent = sentCommands(sim.url, scratch.namespace, MONITOR_MS).catch((err: unknown) => {
          log(`the MONITOR sample failed: ${err instanceof Error ? err.message : String(err)}`);
          return undefined;
        });
      }
      if (done >= ids.length) break;
      if (MEASURE_S > 0) {
        const steadyFrom = samples.find((x) => x.inFlight >= 0.9 * peakSoFar);
        if (steadyFrom && Date.now() - steadyFrom.at >= MEASURE_S * 1000) break;
      }
      if (Date.now() - started > 30 * 60_000) throw new Error("tasks not done within 30 minutes");
      const minuteAgo = samples.find((x) => x.at >= Date.now() - 90_000);
      if (minuteAgo && minuteAgo.at < Date.now() - 80_000 && minuteAgo.done === done && minuteAgo.calls === calls) {
        throw new Error(`no task finished and no model call made for 90 s (done ${done}/${ids.length})`);
      }
      await sleep(500);
    }
    const wallS = (Date.now() - started) / 1000;
    const peak = samples.reduce((a, s) => (s.inFlight > a.inFlight ? s : a));
    // The steady window: while the planner held at least 90% of its peak.
    const steady = samples.filter((s) => s.inFlight >= 0.9 * peak.inFlight);
    const first = steady[0] ?? peak;
    const last = steady[steady.length - 1] ?? peak;
    const windowS = Math.max(0.001, (last.at - first.at) / 1000);
    // Model calls per finished task: its checkpointed model turns (the sim's count also has calls of tasks still in flight).
    const turns = await db.query<{ n: string | null }>(
      "SELECT count(*)::float / NULLIF((SELECT count(*) FROM tasks WHERE status = 'succeeded'), 0) AS n FROM steps s JOIN tasks t ON t.id = s.task_id WHERE t.status = 'succeeded' AND s.kind = 'llm'",
    );
    const callsPerTask = Number(turns.rows[0]?.n ?? 0) || 6;
    const meanInFlight = steady.reduce((a, s) => a + s.inFlight, 0) / Math.max(1, steady.length);
    const latencyBound = meanInFlight / (callsPerTask * (LATENCY_MS / 1000));
    // The sim limits each model on its own: the model with the largest share of a task's calls binds first.
    const windowCalls = Object.fromEntries(Object.entries(last.byModel).map(([m, n]) => [m, n - (first.byModel[m] ?? 0)]));
    const totalWindowCalls = Object.values(windowCalls).reduce((a, n) => a + n, 0);
    const largestShare = totalWindowCalls > 0 ? Math.max(...Object.values(windowCalls)) / totalWindowCalls : 1;
    const rateBound = rpm / 60 / (callsPerTask * largestShare);
    const figures: RunFigures = {
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
      callRate: (last.calls - first.calls) / windowS,
      callRateByModel: Object.fromEntries(Object.entries(windowCalls).map(([m, n]) => [m, n / windowS])),
      latencyBound,
      rateBound,
      failed,
      done,
      wallS,
      cost: roleCost(first, last),
    };
    const sample = await sent;
    if (sample) figures.sent = { ...sample, inWindow: sample.from >= first.at && sample.to <= last.at };
    else if (MONITOR_MS > 0) figures.notSent = sent ? "the MONITOR sample failed (logged above)" : "model calls were never answered at a steady rate in the first half of the run";
    if (withShutdown) figures.shutdown = await shutdownPhase(cluster, db, sim.url, planner, ids.length, samples[samples.length - 1]?.inFlight ?? 0);
    return figures;
  } finally {
    // Every process's output to $CLAWFLEET_CRASH_LOGS/concurrency-<rpm>/ when that variable names a folder.
    cluster.dump(`concurrency-${rpm}`);
    redis.disconnect();
    await cluster.stopAll();
    await sim.stop();
    await db.end();
    await scratch.remove();
  }
}

/** A figure per operation; "—" where the window held none of them (tasks held, no step taken). */
const perOp = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : "—");

function sentLine(s: SentCommands & { inWindow: boolean }, callsPerTask: number): string {
  const total = [...s.byCommand.values()].reduce((a, n) => a + n, 0);
  const per = total / Math.max(1, s.modelCalls);
  const top = [...s.byCommand].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([c, n]) => `${c} ${(n / Math.max(1, s.modelCalls)).toFixed(2)}`).join(", ");
  return (
    `  Redis commands clients sent           ${per.toFixed(2)} per model call, ${(per * callsPerTask).toFixed(1)} per task's worth of calls ` +
    `(MONITOR, ${((s.to - s.from) / 1000).toFixed(1)} s ${s.inWindow ? "inside" : "NOT inside"} the steady window, ${s.modelCalls} model calls; ${top})`
  );
}

function report(label: string, f: RunFigures): string {
  const bound = Math.min(f.latencyBound, f.rateBound);
  const lines = [
    `${label} (sim --rpm ${f.rpm}, ${f.tasks} tasks):`,
    `  peak tasks in flight in the planner   ${f.peakInFlight}`,
    `  planner RSS before / at peak          ${f.rssBeforeMb.toFixed(0)} MB / ${f.rssAtPeakMb.toFixed(0)} MB`,
    `  RSS per task in flight                ${f.rssPerTaskKb.toFixed(0)} KB`,
    `  model calls per task                  ${f.callsPerTask.toFixed(2)}`,
    `  steady window (>= 90% of peak)        ${f.windowS.toFixed(1)} s, mean ${f.meanInFlight.toFixed(0)} in flight`,
    `  throughput in that window             ${f.throughput.toFixed(2)} tasks/s; model calls ${f.callRate.toFixed(1)}/s (${Object.entries(f.callRateByModel).map(([m, r]) => `${m} ${r.toFixed(1)}/s`).join(", ")}; limit ${(f.rpm / 60).toFixed(1)}/s per model)`,
    // With every task in flight at once they move in step and end together, late: tasks ended in a window
    // says little; the work done in it is its model calls, a task's worth per calls-per-task of them.
    `  work done in that window              ${(f.callRate / f.callsPerTask).toFixed(2)} tasks/s (model calls / calls per task)`,
    `  bound: latency ${f.latencyBound.toFixed(1)}, rate limit ${f.rateBound.toFixed(2)} tasks/s -> ${((100 * f.callRate) / f.callsPerTask / bound).toFixed(0)}% of min`,
    `  CPU in that window, clawfleet plan's units   planner ${perOp(f.cost.plannerMsPerStep)} ms per step, executor ${perOp(f.cost.executorMsPerToolCall)} ms per tool call, ` +
      `rate gateway ${perOp(f.cost.gatewayMsPerModelCall)} ms per model call; checkpoint ${perOp(f.cost.checkpointMsPerStep)} ms per step ` +
      `(${f.cost.steps} steps, ${f.cost.toolCalls} tool calls, ${f.cost.modelCalls} model calls)`,
    `  cores each role used in that window   ${ROLES.map((r) => `${r} ${f.cost.cores[r].toFixed(3)}`).join(", ")}`,
    `  write system calls per model call     ${ROLES.map((r) => `${r} ${perOp(f.cost.writesPerModelCall[r])}`).join(", ")} (/proc/<pid>/io: socket writes, and log lines)`,
    ...(f.sent ? [sentLine(f.sent, f.callsPerTask)] : f.notSent ? [`  Redis commands clients sent           not sampled: ${f.notSent}`] : []),
    `  Redis commands run in that window     ${f.cost.redisPerModelCall.toFixed(2)} per model call, ${(f.cost.redisPerModelCall * f.callsPerTask).toFixed(1)} per task's worth of calls (the server's count: those its scripts ran included, and anything else using it)`,
    `  failed tasks ${f.failed}; ${f.done}/${f.tasks} done after ${f.wallS.toFixed(1)} s`,
  ];
  const s = f.shutdown;
  if (s) {
    lines.push(
      `  shutdown: SIGTERM with ${s.inFlightAtSignal} in flight (${s.runningAtSignal} running in the database)`,
      `    exit after ${s.exitS.toFixed(1)} s (grace ${GRACE_MS / 1000} s), code ${String(s.exitCode)}`,
      `    tasks then: ${Object.entries(s.statusAfter).map(([k, n]) => `${k} ${n}`).join(", ")}; lease owners left ${s.leaseOwnersLeft}; attempts counted for ${s.attemptsCounted}`,
      `    a new planner finished them: ${s.doneAfter}/${f.tasks} done in ${s.finishS.toFixed(1)} s, failed ${s.failedAfter}, most attempts of a task ${s.maxAttempts}`,
    );
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  log(`${os.cpus().length} cores, ${TASKS} tasks, model latency ${LATENCY_MS} ms`);
  if (GENEROUS_TASKS > 0) {
    const generous = await run(Number(args["generous-rpm"]), GENEROUS_TASKS, false);
    process.stdout.write(`${report("generous rate limit", generous)}\n`);
    process.stdout.write(`load average (1, 5, 15 min): ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
  }
  if (LIMITED_TASKS > 0) {
    const limited = await run(Number(args["limited-rpm"]), LIMITED_TASKS, args.shutdown === true);
    process.stdout.write(`${report("rate limit binding", limited)}\n`);
    process.stdout.write(`load average (1, 5, 15 min): ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
