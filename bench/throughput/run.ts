/**
 * Clawfleet's throughput against a bare pipeline doing the same infrastructure
 * work per task (bareNode.ts), back to back on the same Postgres, Redis and NATS,
 * in three layouts (layouts.ts), with the built-in simulated model at zero latency:
 *
 *   1. work per task (work.ts) on the one-process layout (and split, full mode):
 *      Postgres commits, Redis commands, Moleculer calls, events — the bare plan is made from it;
 *   2. per layout, Clawfleet then the bare pipeline, then the bare pipeline twice more, its model turns
 *      also sent to the simulated provider in its own process, as Clawfleet's are: over node:http alone
 *      ("bare+model"), and through the official SDK ("bare+SDK", the client Clawfleet makes its model
 *      calls with) (`--no-bare-model` skips both). Each: `--tasks` order-router tasks submitted at once,
 *      tasks/s from the first submit to the last finish, and Clawfleet's ratio over it. The provider's
 *      round trip weighs on both sides of the last two, and Clawfleet over them is what Clawfleet's own
 *      work costs; the ratio over the plain bare pipeline stays the headline, the one a provider-free
 *      ceiling sets, and each of the two over the plain one is printed too: what that round trip alone
 *      leaves of the ceiling, before any of Clawfleet's own work;
 *   3. end-to-end latency (submit sent → finished) at `--rate` tasks/s, one-process and split, of each;
 *   4. a cost model: CPU ms per checkpointed step per role process (/proc), and in six processes the same in
 *      the units `clawfleet plan` sizes roles by (per step, per tool call, per model call); bytes per checkpoint; and each
 *      process's write system calls per task (/proc/<pid>/io: its socket writes), Redis' and NATS' too.
 *
 *   npx tsx bench/throughput/run.ts [--quick] [--tasks 400] [--rate 20] [--latency-seconds 15] [--work-tasks 40]
 *                                   [--slots 8] [--profile dir] [--layouts one-process,split,embedded]
 *                                   [--provider process|in-process] [--clawfleet-env KEY=VALUE ...] [--no-bare-model]
 *
 * `--provider process` (the default) runs the simulated model as its own process, as a provider is
 * reached: its CPU is printed apart and not counted as Clawfleet's (layouts.ts).
 *
 * `--profile dir` runs every process under `node --cpu-prof` (profiles in dir/<layout>/<role>/, the
 * simulated provider's in dir/<layout>/provider/; the bare pipelines' in dir/bare-<layout>/ and
 * dir/bare-model-<layout>/ and dir/bare-sdk-<layout>/),
 * read with bench/throughput/profileTop.ts. Figures are noisy on a shared machine: the load
 * average is printed beside each. Needs PostgreSQL, Redis and NATS on 127.0.0.1.
 */
import { parseArgs } from "node:util";
import pg from "pg";
import { planProblem, type BarePlan, type ProviderClient } from "./barePlan";
import { submitBurst, submitPaced, waitFinished, warmUp, type Finished, type Sent } from "./driver";
import { clawfleetEnv, LAYOUTS, startBare, startLayout, type Layout, type RunningLayout } from "./layouts";
import { cpuMs, delta, loadLine, percentile, SERVERS, serversCpuMs, serversWriteCalls, writeCalls, WRITING_SERVERS } from "./meters";
import { formatWork, measureWork, type Work } from "./work";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    tasks: { type: "string" },
    rate: { type: "string", default: "20" },
    "latency-seconds": { type: "string" },
    "work-tasks": { type: "string" },
    plan: { type: "string" },
    slots: { type: "string", default: "8" },
    profile: { type: "string" },
    layouts: { type: "string", default: LAYOUTS.join(",") },
    provider: { type: "string", default: "process" },
    "clawfleet-env": { type: "string", multiple: true },
    "no-bare-model": { type: "boolean", default: false },
  },
});
/** The second and third peers, the bare pipeline that also calls the simulated provider per model turn (`--no-bare-model`: not run). */
const WITH_PROVIDER = !(args["no-bare-model"] ?? false);
const QUICK = args.quick ?? false;
const TASKS = Number(args.tasks ?? (QUICK ? 40 : 400));
const RATE = Number(args.rate);
const LATENCY_TASKS = RATE * Number(args["latency-seconds"] ?? (QUICK ? 4 : 15));
const WORK_TASKS = Number(args["work-tasks"] ?? (QUICK ? 10 : 40));
const SLOTS = Number(args.slots);
const LAYOUT_LIST = (args.layouts ?? "").split(",") as Layout[];
if (args.provider !== "process" && args.provider !== "in-process") throw new Error(`--provider is process or in-process, not ${args.provider}`);
const PROVIDER: "process" | "in-process" = args.provider;
/** `--clawfleet-env KEY=VALUE`, repeatable: set in Clawfleet's processes only, to compare a setting's two values. */
const CLAWFLEET_ENV = clawfleetEnv(args["clawfleet-env"]);

/** The bare pipeline's plan: the measured per-task counts (background actions left out), rounded. */
function planOf(w: Work): BarePlan {
  const per = (key: string) => w.brokerPerTask.get(key) ?? 0;
  const sum = (prefix: string) => [...w.brokerPerTask].filter(([k]) => k.startsWith(prefix)).reduce((s, [, v]) => s + v, 0);
  return {
    modelTurns: Math.round(per("call rate-gateway.complete")),
    toolCalls: Math.round(per("call executor.run")),
    storeCalls: Math.round(sum("call checkpoint.") - per("call checkpoint.createTask")),
    commits: Math.round(w.pgCommitsPerTask),
    events: Math.round(sum("emit ")),
  };
}

interface Throughput {
  tasks: number;
  ok: number;
  steps: number;
  seconds: number;
  perSecond: number;
  /** CPU ms each process used over the run, by process name. */
  cpu: Map<string, number>;
  /** CPU ms the simulated provider's own process used over the run, when it runs apart. */
  providerCpu?: number;
  /** CPU ms each infrastructure server (Postgres, Redis, NATS: all their processes) used over the run. */
  servers: Map<string, number>;
  /** Write system calls each process made over the run (meters.ts `writeCalls`), by process name; then Redis' and NATS' (their live processes'). */
  writes: Map<string, number>;
  serverWrites: Map<string, number>;
  load: string;
}

/** `read` of each of the layout's processes, by name (its CPU ms, its write calls). */
function perNode(l: RunningLayout, read: (pid: number) => number): Map<string, number> {
  return new Map(l.nodes.map((n) => [n.name, n.proc.pid === undefined ? NaN : read(n.proc.pid)]));
}

async function throughput(l: RunningLayout, n: number): Promise<Throughput> {
  const providerPid = l.provider?.proc.pid;
  const cpu0 = perNode(l, cpuMs);
  const p0 = providerPid === undefined ? 0 : cpuMs(providerPid);
  const s0 = serversCpuMs(SERVERS);
  const w0 = perNode(l, writeCalls);
  const sw0 = serversWriteCalls(WRITING_SERVERS);
  const sent = await submitBurst(l.base, n, 16);
  const done = await waitFinished(l, sent.map((s) => s.id), 900_000);
  const cpu1 = perNode(l, cpuMs);
  const s1 = serversCpuMs(SERVERS);
  const w1 = perNode(l, writeCalls);
  const sw1 = serversWriteCalls(WRITING_SERVERS);
  const p1 = providerPid === undefined ? 0 : cpuMs(providerPid);
  const first = Math.min(...sent.map((s) => s.sentAt));
  const last = Math.max(...done.map((d) => d.finishedAt));
  const seconds = (last - first) / 1000;
  return {
    tasks: n,
    ok: done.filter((d) => d.status === "succeeded").length,
    steps: done.reduce((s, d) => s + d.steps, 0),
    seconds,
    perSecond: done.length / seconds,
    cpu: delta(cpu1, cpu0),
    writes: delta(w1, w0),
    serverWrites: delta(sw1, sw0),
    ...(providerPid === undefined ? {} : { providerCpu: p1 - p0 }),
    servers: new Map(SERVERS.map((name) => [name, (s1.get(name) ?? 0) - (s0.get(name) ?? 0)])),
    load: loadLine(),
  };
}

interface Latency {
  n: number;
  p50: number;
  p99: number;
  load: string;
  /** Where a light-load task's time went, from its rows' timestamps (Clawfleet in Postgres only). */
  phases?: string;
}

async function latency(l: RunningLayout): Promise<Latency> {
  const sent: Sent[] = await submitPaced(l.base, LATENCY_TASKS, RATE);
  const done: Finished[] = await waitFinished(l, sent.map((s) => s.id), 600_000);
  const at = new Map(done.map((d) => [d.id, d.finishedAt]));
  const ms = sent.flatMap((s) => (at.has(s.id) ? [(at.get(s.id) ?? 0) - s.sentAt] : [])).sort((a, b) => a - b);
  const phases = l.peer === "clawfleet" && l.scratch ? await phasesOf(l.scratch.db.url, sent) : undefined;
  return { n: ms.length, p50: percentile(ms, 50), p99: percentile(ms, 99), load: loadLine(), ...(phases ? { phases } : {}) };
}

/**
 * Where a light-load task's time went, from Postgres' own clock: the submit's insert (its transaction's start)
 * to the claim, the claim to the first checkpoint, and the time to each later checkpoint from the one before it,
 * summed per task by that checkpoint's kind (a model turn's or a tool result's). The last checkpoint is written
 * with the task's end. Each is the median over the tasks, so they come near the tasks' time in Postgres without
 * adding up to it exactly.
 */
async function phasesOf(url: string, sent: readonly Sent[]): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ phase: string; p50: string }>(
      `WITH t AS (SELECT id, created_at, started_at FROM tasks WHERE id = ANY($1::uuid[]) AND status = 'succeeded'),
            s AS (SELECT st.task_id, st.step, st.kind, st.created_at,
                         lag(st.created_at) OVER (PARTITION BY st.task_id ORDER BY st.step) AS prev
                    FROM steps st JOIN t ON t.id = st.task_id),
            per AS (
              SELECT 1 AS pos, 'insert to claim' AS phase, extract(epoch FROM t.started_at - t.created_at) * 1000 AS ms FROM t
              UNION ALL
              SELECT 2, 'claim to first checkpoint', extract(epoch FROM s.created_at - t.started_at) * 1000 FROM s JOIN t ON t.id = s.task_id WHERE s.prev IS NULL
              UNION ALL
              SELECT 3, 'to each later ' || s.kind || ' checkpoint (sum per task)', sum(extract(epoch FROM s.created_at - s.prev) * 1000) FROM s WHERE s.prev IS NOT NULL GROUP BY s.task_id, s.kind
            )
       SELECT phase, (percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::text AS p50 FROM per GROUP BY pos, phase ORDER BY pos, phase`,
      [sent.map((s) => s.id)],
    );
    return r.rows.map((row) => `${row.phase} ${Number(row.p50).toFixed(1)} ms`).join("; ");
  } finally {
    await c.end();
  }
}

/**
 * Bytes per checkpoint and per task row in a distributed layout's database, and the share of the task rows'
 * updates Postgres wrote heap-only (of those its statistics had counted: a backend reports them about once a
 * second while busy, and within 10 s once idle).
 */
async function bytes(l: RunningLayout): Promise<string> {
  if (!l.scratch) return "";
  const c = new pg.Client({ connectionString: l.scratch.db.url });
  await c.connect();
  try {
    const r = await c.query<{ steps: string; steps_bytes: string; row_bytes: string; tasks: string; tasks_bytes: string; updates: string; hot: string }>(
      `SELECT (SELECT count(*) FROM steps)::text AS steps, pg_total_relation_size('steps')::text AS steps_bytes,
              (SELECT coalesce(avg(pg_column_size(s.*)), 0) FROM steps s)::text AS row_bytes,
              (SELECT count(*) FROM tasks)::text AS tasks, pg_total_relation_size('tasks')::text AS tasks_bytes,
              u.n_tup_upd::text AS updates, u.n_tup_hot_upd::text AS hot
       FROM pg_stat_user_tables u WHERE u.relname = 'tasks'`,
    );
    const row = r.rows[0];
    if (!row) return "";
    const per = (b: string, n: string) => (Number(b) / Math.max(1, Number(n))).toFixed(0);
    const updates = Number(row.updates);
    const hot = updates > 0 ? `${((100 * Number(row.hot)) / updates).toFixed(1)} %` : "n/a";
    return [
      `  storage: ${per(row.steps_bytes, row.steps)} bytes per checkpoint (steps table with its indexes, ${row.steps} rows; ${Number(row.row_bytes).toFixed(0)} bytes per row's data), ${per(row.tasks_bytes, row.tasks)} bytes per task row (tasks table with its indexes)`,
      `  task rows' updates written heap-only: ${hot} of ${updates} counted (${(updates / Math.max(1, Number(row.tasks))).toFixed(1)} per task; a task's claim and finish change its status, and never are)`,
    ].join("\n");
  } finally {
    await c.end();
  }
}

function formatRun(name: string, t: Throughput, lat: Latency | undefined): string {
  const stepsPer = t.steps / Math.max(1, t.ok);
  const cpuLines = [...t.cpu].map(([proc, ms]) => `${proc} ${(ms / Math.max(1, t.steps)).toFixed(2)}`).join(", ");
  const cpuTotal = [...t.cpu.values()].reduce((s, v) => s + v, 0);
  return [
    `  ${name.padEnd(10)} ${t.perSecond.toFixed(1).padStart(7)} tasks/s  (${t.ok}/${t.tasks} succeeded in ${t.seconds.toFixed(1)} s, ${stepsPer.toFixed(1)} steps per task; ${t.load})`,
    `             CPU ms per step, by process: ${cpuLines}; all: ${(cpuTotal / Math.max(1, t.steps)).toFixed(2)} (${(cpuTotal / Math.max(1, t.tasks)).toFixed(1)} per task)`,
    t.providerCpu === undefined ? "" : `             the simulated provider's own process, not counted above: ${(t.providerCpu / Math.max(1, t.steps)).toFixed(2)} CPU ms per step`,
    [...t.servers.values()].every((v) => v === 0)
      ? ""
      : `             the servers on this machine, not counted above (anything else using them included), CPU ms per step: ${[...t.servers].map(([name, ms]) => `${name} ${(ms / Math.max(1, t.steps)).toFixed(2)}`).join(", ")}`,
    `             write system calls per task (/proc/<pid>/io: its socket writes, and its log lines), by process: ${[...t.writes].map(([proc, n]) => `${proc} ${(n / Math.max(1, t.tasks)).toFixed(1)}`).join(", ")}; ` +
      `all: ${([...t.writes.values()].reduce((a, b) => a + b, 0) / Math.max(1, t.tasks)).toFixed(1)}` +
      ([...t.serverWrites.values()].every((v) => v === 0) ? "" : `; the servers': ${[...t.serverWrites].map(([name, n]) => `${name} ${(n / Math.max(1, t.tasks)).toFixed(1)}`).join(", ")}`),
    // `--latency-seconds 0` measures no latency: a line of NaN would say nothing.
    lat && lat.n > 0 ? `             latency at ${RATE} tasks/s: p50 ${lat.p50.toFixed(0)} ms, p99 ${lat.p99.toFixed(0)} ms (${lat.n} tasks; ${lat.load})` : "",
    lat?.phases ? `             of it, medians per task in Postgres' clock: ${lat.phases}` : "",
  ]
    .filter((s) => s !== "")
    .join("\n");
}

/**
 * The split layout's CPU in the units `clawfleet plan` sizes each role by (app/client/plan.ts): the planners'
 * CPU per step (both planners' together, over every step), the executor's per tool call, the rate gateway's
 * per model call, the checkpoint role's per step and the api's per task. Model and tool calls are the plan's
 * per-task counts times the tasks that succeeded. Only for a layout whose processes are those roles.
 */
function planUnits(t: Throughput, plan: BarePlan): string {
  const of = (name: string) => t.cpu.get(name);
  const planners = [...t.cpu].filter(([name]) => name.startsWith("planner-")).reduce((s, [, ms]) => s + ms, 0);
  const gateway = of("rate-gateway");
  const executor = of("executor");
  const checkpoint = of("checkpoint");
  const api = of("api");
  if (gateway === undefined || executor === undefined || checkpoint === undefined || api === undefined || planners === 0) return "";
  const per = (ms: number, n: number) => (ms / Math.max(1, n)).toFixed(2);
  return (
    `             in clawfleet plan's units, CPU ms: planners ${per(planners, t.steps)} per step (--cpu-planner-ms), ` +
    `executor ${per(executor, plan.toolCalls * t.ok)} per tool call (--cpu-executor-ms), rate gateway ${per(gateway, plan.modelTurns * t.ok)} per model call (--cpu-gateway-ms); ` +
    `checkpoint ${per(checkpoint, t.steps)} per step, api ${per(api, t.ok)} per task`
  );
}

/** Clawfleet's light-load p50 over the peer's, when both were measured. */
function latencyRatio(cf: Latency | undefined, peer: Latency | undefined): string {
  return cf && peer && cf.n > 0 && peer.n > 0 ? `; p50 at ${RATE} tasks/s ${(cf.p50 / peer.p50).toFixed(1)}× its` : "";
}

async function measure(l: RunningLayout, withLatency: boolean): Promise<{ t: Throughput; lat: Latency | undefined; storage: string }> {
  try {
    await warmUp(l, 10);
    const t = await throughput(l, TASKS);
    const lat = withLatency ? await latency(l) : undefined;
    return { t, lat, storage: await bytes(l) };
  } catch (err) {
    for (const n of l.nodes) process.stderr.write(`--- ${n.name} (exit ${n.proc.exitCode ?? n.proc.signalCode}):\n${n.output().slice(-2000)}\n`);
    throw err;
  } finally {
    await l.stop();
  }
}

async function main(): Promise<void> {
  const opts = { slots: SLOTS, provider: PROVIDER, env: CLAWFLEET_ENV, ...(args.profile ? { profileDir: args.profile } : {}) };
  process.stdout.write(
    `throughput bench (${QUICK ? "quick" : "full"}): ${TASKS} order-router tasks per run, CLAWFLEET_PLANNER_SLOTS=${SLOTS} per planner, sim latency 0 ms, sim ${PROVIDER === "process" ? "in its own process" : "inside the rate-gateway's node"}${Object.keys(CLAWFLEET_ENV).length > 0 ? `, Clawfleet's processes with ${JSON.stringify(CLAWFLEET_ENV)}` : ""}; ${loadLine()}\n\n`,
  );
  // `--plan '{"modelTurns":6,…}'` skips the work-per-task phase and gives the bare pipeline's plan as measured before.
  const works: Work[] = [];
  for (const layout of args.plan ? [] : QUICK ? (["one-process"] as const) : (["one-process", "split"] as const)) {
    const l = await startLayout(layout, { slots: SLOTS, provider: PROVIDER });
    try {
      works.push(await measureWork(l, WORK_TASKS, QUICK ? 8_000 : 20_000));
    } finally {
      await l.stop();
    }
    process.stdout.write(`${formatWork(works.at(-1) as Work)}\n  ${loadLine()}\n\n`);
  }
  const plan = args.plan ? (JSON.parse(args.plan) as BarePlan) : planOf(works[0] as Work);
  const problem = planProblem(plan);
  if (problem) throw new Error(`the bare pipeline's plan: ${problem}`);
  process.stdout.write(`bare pipeline plan per task: ${JSON.stringify(plan)}\n\n`);

  // The bare pipeline, then (unless --no-bare-model) the same with its model turns sent to the simulated provider,
  // over node:http and through the official SDK.
  const PEERS: ReadonlyArray<[string, ProviderClient | undefined]> = WITH_PROVIDER
    ? [
        ["bare", undefined],
        ["bare+model", "http"],
        ["bare+SDK", "sdk"],
      ]
    : [["bare", undefined]];
  for (const layout of LAYOUT_LIST) {
    const withLatency = layout !== "embedded";
    const cf = await measure(await startLayout(layout, opts), withLatency);
    const units = planUnits(cf.t, plan);
    process.stdout.write(`layout ${layout}:\n${formatRun("Clawfleet", cf.t, cf.lat)}\n${units === "" ? "" : `${units}\n`}${cf.storage}\n`);
    let bare: Awaited<ReturnType<typeof measure>> | undefined;
    for (const [name, client] of PEERS) {
      const peer = await measure(await startBare(layout, opts, plan, client), withLatency);
      bare ??= peer;
      process.stdout.write(`${formatRun(name, peer.t, peer.lat)}\n  Clawfleet / ${name} = ${(cf.t.perSecond / peer.t.perSecond).toFixed(2)}${latencyRatio(cf.lat, peer.lat)}\n`);
      // What the provider's round trip alone leaves of the plain peer's throughput and latency: no pipeline that makes it does better.
      if (client !== undefined) process.stdout.write(`  ${name} / bare = ${(peer.t.perSecond / bare.t.perSecond).toFixed(2)}${latencyRatio(peer.lat, bare.lat)}\n`);
    }
    process.stdout.write("\n");
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
