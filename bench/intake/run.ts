/**
 * Intake under a sustained open-loop load: `POST /v1/tasks` at `--rate` submits/s for
 * `--seconds`, each send scheduled by the clock (never by earlier answers), against
 *
 *   Clawfleet  the split layout (bench/throughput/layouts.ts): api+intake in one process,
 *              checkpoint, rate-gateway, executor and two planners consuming the tasks
 *              at the same time; every 202 comes after the task's commit (which the
 *              intake makes itself, on its own connections);
 *   peer       a plain moleculer-web endpoint doing one Postgres insert (peer.ts).
 *
 * Each target first takes `--warm-seconds` of the same load on the same client
 * connections (printed apart, not counted): the measured seconds are the sustained
 * load, not a cold start's, whose burst of new connections a busy Node 20 server
 * accepts one per event-loop turn (BENCHMARKS.md, "Intake's answer and connections").
 * Latency is counted from each request's scheduled time (so a stalled sender shows
 * up in it); a send more than 10 ms behind its schedule counts as late; any answer
 * but 202, or no answer, is an error. After the run the rows are counted: every
 * 202, warm-up included, must be durable. Under each line: the CPU time per submit of the
 * process that answers (the api; the peer), and, consumers running, the api's calls of the
 * checkpoint per submit (brokerCounter.cjs): the intake commits new tasks itself, so only
 * the background reads and sweeps show there.
 *
 *   npx tsx bench/intake/run.ts [--quick] [--rate 1000] [--seconds 30] [--warm-seconds 5] [--consumers-nice 0|…|19|stopped]… [--profile dir]
 *                               [--clawfleet-env KEY=VALUE]…
 *
 * `--profile dir` runs every Clawfleet process under the CPU profiler (profiles in
 * dir/nice<N>/split/<role>/), and the peer (dir/peer/), read with bench/throughput/profileTop.ts.
 *
 * On two cores the planners, the executor, the rate gateway and the simulated provider
 * take every cycle the api leaves, so the api's latency measures the machine's
 * scheduler as much as the api. A cluster gives intake its own CPU (its pods' requests);
 * `--consumers-nice N` (default: both 0 and 10) stands for that here: every thread of
 * the consuming processes runs at nice N, so they still consume all the while, but on
 * what the api and the databases leave. The checkpoint role is one of them: it serves
 * the planners' writes, and a submit does not go through it (the api's calls of it,
 * printed while it runs, are background reads and sweeps). `--consumers-nice stopped` measures the path alone:
 * the consumers are stopped (SIGSTOP) for the load and let go after it, so the tasks
 * queue up unclaimed. Each setting is its own Clawfleet run. The peer runs alone once,
 * and after each Clawfleet run at a niceness, again beside its consumers while they go
 * on with the backlog that run left (no new tasks come: the backlog printed at its start
 * and end shows they had work all along). Each peer run starts on an empty table.
 *
 * `--clawfleet-env KEY=VALUE` (repeatable) sets a variable in Clawfleet's processes only (the peer's are
 * left as they are), to compare a setting's two values; the header line prints what was set.
 */
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { freePort, spawnCaptured, stopAll, type NodeProcess } from "../../testkit/cluster";
import { createTestDatabase } from "../../testkit/scratch";
import { warmUp } from "../throughput/driver";
import { clawfleetEnv, measuredEnv, startLayout } from "../throughput/layouts";
import { cpuMs, delta, loadLine, percentile, sleep } from "../throughput/meters";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    rate: { type: "string" },
    seconds: { type: "string" },
    "warm-seconds": { type: "string" },
    slots: { type: "string", default: "8" },
    profile: { type: "string" },
    "consumers-nice": { type: "string", multiple: true },
    "clawfleet-env": { type: "string", multiple: true },
  },
});
const QUICK = args.quick ?? false;
const RATE = Number(args.rate ?? (QUICK ? 200 : 1000));
const SECONDS = Number(args.seconds ?? (QUICK ? 5 : 30));
const WARM_SECONDS = Number(args["warm-seconds"] ?? (QUICK ? 1 : 5));
const LATE_MS = 10;
/** `--clawfleet-env KEY=VALUE`, repeatable: set in Clawfleet's processes only, to compare a setting's two values. */
const CLAWFLEET_ENV = clawfleetEnv(args["clawfleet-env"]);
/** Each Clawfleet run's consumers: at a niceness, or "stopped" (SIGSTOP for the load, SIGCONT after it). */
const NICENESS: Array<number | "stopped"> = (args["consumers-nice"] ?? ["0", "10"]).map((n) => {
  if (n === "stopped") return n;
  const v = Number(n);
  if (!Number.isInteger(v) || v < 0 || v > 19) throw new RangeError(`--consumers-nice must be an integer from 0 to 19 or "stopped", got ${n}`);
  return v;
});
/** The processes that consume the tasks (bench/throughput/layouts.ts names them), and the checkpoint role that serves them. */
const CONSUMERS = /^(planner-\d+|executor|rate-gateway|provider|checkpoint)$/;

interface Outcome {
  scheduled: number;
  sent: number;
  answered: number;
  status: number;
  /** Why there was no answer (status 0). */
  error?: string;
}

const BODY = (i: number) => JSON.stringify({ agent: "order-router", input: { order_id: `ORD-${1000 + (i % 1000)}` } });

/** The answer's status, or 0 with why there was none (the socket error's code, or a timeout). */
function post(agent: http.Agent, port: number, body: string): Promise<{ status: number; error?: string }> {
  return new Promise((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, path: "/v1/tasks", method: "POST", agent, headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0 }));
    });
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ status: 0, error: err.code ?? err.message }));
    req.setTimeout(30_000, () => req.destroy(Object.assign(new Error("no answer in 30 s"), { code: "no answer in 30 s" })));
    req.end(body);
  });
}

/** The client's connections: kept from the warm-up into the measured load, as a load balancer keeps its own. */
const client = (): http.Agent => new http.Agent({ keepAlive: true, maxSockets: 512 });

/** The open-loop load: request i is sent at t0 + i/RATE, whatever the others are doing. */
async function load(agent: http.Agent, port: number, seconds: number): Promise<Outcome[]> {
  const total = RATE * seconds;
  const outcomes: Promise<Outcome>[] = [];
  const t0 = performance.now() + 50;
  let i = 0;
  while (i < total) {
    const now = performance.now();
    while (i < total && t0 + (i * 1000) / RATE <= now) {
      const scheduled = t0 + (i * 1000) / RATE;
      const sent = performance.now();
      outcomes.push(post(agent, port, BODY(i)).then((a) => ({ scheduled, sent, answered: performance.now(), ...a })));
      i++;
    }
    await sleep(1);
  }
  return Promise.all(outcomes);
}

/** The warm-up's load, then (after `beforeMeasured`, where the meters are read) the measured one, on the same connections. */
async function warmThenLoad(port: number, beforeMeasured: () => void): Promise<{ warm: Outcome[]; o: Outcome[] }> {
  const agent = client();
  try {
    const warm = WARM_SECONDS > 0 ? await load(agent, port, WARM_SECONDS) : [];
    beforeMeasured();
    return { warm, o: await load(agent, port, SECONDS) };
  } finally {
    agent.destroy();
  }
}

/** The accepted submits and their latencies, sorted. */
function accepted(o: readonly Outcome[]): { ok: Outcome[]; lat: number[] } {
  const ok = o.filter((x) => x.status === 202);
  return { ok, lat: ok.map((x) => x.answered - x.scheduled).sort((a, b) => a - b) };
}

/** The warm-up's line: how the cold start went, not counted in the figures. */
function warmLine(warm: readonly Outcome[]): string {
  if (warm.length === 0) return `  ${"".padEnd(10)} no warm-up`;
  const { ok, lat } = accepted(warm);
  return `  ${"".padEnd(10)} warm-up (${WARM_SECONDS} s, not counted): p50 ${percentile(lat, 50).toFixed(1)} ms, p99 ${percentile(lat, 99).toFixed(1)} ms, max ${(lat.at(-1) ?? NaN).toFixed(0)} ms, ${ok.length}/${warm.length} accepted`;
}

/** One statement on a connection of its own. */
async function sql<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end();
  }
}

async function countRows(url: string, table: string, where = "true"): Promise<number> {
  return Number((await sql<{ n: string }>(url, `SELECT count(*)::text AS n FROM ${table} WHERE ${where}`))[0]?.n ?? 0);
}

function report(name: string, o: Outcome[], rows: number, warm: readonly Outcome[]): string {
  const { ok, lat } = accepted(o);
  // Every 202 is durable, the warm-up's too (and the layout's own warm-up tasks are extra rows).
  const durable = ok.length + accepted(warm).ok.length;
  const late = o.filter((x) => x.sent - x.scheduled > LATE_MS).length;
  const span = (Math.max(...o.map((x) => x.answered)) - Math.min(...o.map((x) => x.scheduled))) / 1000;
  const errors = new Map<string, number>();
  for (const x of o) {
    if (x.status === 202) continue;
    const what = x.status === 0 ? `no answer (${x.error ?? "unknown"})` : String(x.status);
    errors.set(what, (errors.get(what) ?? 0) + 1);
  }
  const errorText = [...errors].map(([what, n]) => `${n}× ${what}`).join(", ");
  return (
    `  ${name.padEnd(10)} p50 ${percentile(lat, 50).toFixed(1)} ms  p99 ${percentile(lat, 99).toFixed(1)} ms  max ${(lat.at(-1) ?? NaN).toFixed(0)} ms  ` +
    `${ok.length}/${o.length} accepted (${(ok.length / span).toFixed(0)}/s), ${o.length - ok.length} errors${errorText ? ` (${errorText})` : ""}, ${late} late sends, ` +
    `${rows} rows stored for ${durable} accepted with the warm-up's${rows >= durable ? "" : " (FEWER than accepted)"}; ${loadLine()}\n` +
    `  ${"".padEnd(10)} p99 by 5 s of the schedule: ${bySlice(ok, 5_000).join(" | ")}\n${warmLine(warm)}`
  );
}

/** The p99 latency of the answers scheduled in each `sliceMs` of the run, in ms: when a stall happened. */
function bySlice(ok: readonly Outcome[], sliceMs: number): string[] {
  const t0 = Math.min(...ok.map((x) => x.scheduled));
  const slices: number[][] = [];
  for (const x of ok) (slices[Math.floor((x.scheduled - t0) / sliceMs)] ??= []).push(x.answered - x.scheduled);
  return [...slices].map((l) => (l ? percentile(l.sort((a, b) => a - b), 99).toFixed(0) : "-"));
}

/** CPU time of each process during the load, per submit: less at the mercy of the machine's other work than latency. */
function cpuLine(pids: ReadonlyArray<{ name: string; pid: number; before: number }>, submits: number): string {
  return `  ${"".padEnd(10)} CPU per submit: ${pids.map((p) => `${p.name} ${((cpuMs(p.pid) - p.before) / submits).toFixed(2)} ms`).join(", ")}`;
}

/** The api's Moleculer traffic counted by brokerCounter.cjs (its own file in the counts folder). */
function countsOf(dir: string, pid: number): Map<string, number> {
  try {
    const { counts } = JSON.parse(fs.readFileSync(path.join(dir, `${pid}.json`), "utf8")) as { counts: Record<string, number> };
    return new Map(Object.entries(counts));
  } catch {
    return new Map();
  }
}

/** Every thread of `pid` (and those it starts later, which inherit it) at nice `n`. */
function renice(pid: number, n: number): void {
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) os.setPriority(Number(tid), n);
}

async function clawfleet(nice: number | "stopped", peer: Peer): Promise<string> {
  const l = await startLayout("split", { slots: Number(args.slots), env: CLAWFLEET_ENV, ...(args.profile ? { profileDir: path.join(args.profile, `nice${nice}`) } : {}) });
  try {
    const consumers = [...l.nodes, ...(l.provider ? [l.provider] : [])].filter((n) => CONSUMERS.test(n.name));
    const names = consumers.map((n) => n.name);
    if (!["executor", "rate-gateway", "provider", "checkpoint", "planner-1"].every((n) => names.includes(n))) {
      throw new Error(`expected the planners, executor, rate gateway, provider and checkpoint; found ${names.join(", ")}`);
    }
    if (nice !== "stopped") for (const n of consumers) renice(n.proc.pid ?? 0, nice);
    await warmUp(l, 3);
    const api = l.nodes.find((n) => n.name === "api");
    if (!api || !l.scratch) throw new Error("no api node");
    let apiCpuBefore = 0;
    let countsBefore = new Map<string, number>();
    await sleep(1_200);
    if (nice === "stopped") for (const n of consumers) n.proc.kill("SIGSTOP");
    const { warm, o } = await warmThenLoad(api.port, () => {
      apiCpuBefore = cpuMs(api.proc.pid ?? 0);
      // Written once a second: the warm-up's last second may count in the measured calls.
      countsBefore = countsOf(l.countsDir, api.proc.pid ?? 0);
    }).finally(() => {
      if (nice === "stopped") for (const n of consumers) n.proc.kill("SIGCONT");
    });
    const cpu = cpuLine([{ name: "api", pid: api.proc.pid ?? 0, before: apiCpuBefore }], o.length);
    // The counts are written once a second.
    await sleep(1_200);
    const calls = [...delta(countsOf(l.countsDir, api.proc.pid ?? 0), countsBefore)]
      .filter(([k]) => k.startsWith("remote checkpoint."))
      .map(([k, v]) => `${k.slice("remote ".length)} ${(v / o.length).toFixed(3)}`)
      .join(", ");
    const line = report(nice === "stopped" ? "Clawfleet, consumers stopped" : `Clawfleet, consumers at nice ${nice}`, o, await countRows(l.scratch.db.url, "tasks"), warm);
    // Stopped, the checkpoint role misses its heartbeats: the api's calls of it fail, and their count says nothing.
    if (nice === "stopped") return `${line}\n${cpu}`;
    const own = `${line}\n${cpu}\n  ${"".padEnd(10)} api's checkpoint calls per submit: ${calls || "none counted"}`;
    // The same load on the peer while the consumers go on with the backlog just submitted: what the
    // machine leaves an endpoint doing one insert, beside the same work.
    const dbUrl = l.scratch.db.url;
    const queued = () => countRows(dbUrl, "tasks", "status = 'queued'");
    const atStart = await queued();
    const beside = await measurePeer(peer, `peer, beside the consumers at nice ${nice}`);
    return `${own}\n${beside}\n  ${"".padEnd(10)} Clawfleet tasks queued for the consumers at the peer's start ${atStart}, at its end ${await queued()}`;
  } finally {
    await l.stop();
  }
}

interface Peer {
  port: number;
  pid: number;
  url: string;
  stop(): Promise<void>;
}

async function startPeer(): Promise<Peer> {
  const db = await createTestDatabase("clawfleet_intake_peer_");
  const port = await freePort();
  const { proc, output, exited } = spawnCaptured(["--require", "tsx/cjs", path.join(__dirname, "peer.ts")], {
    DATABASE_URL: db.url,
    PORT: String(port),
    ...(args.profile ? measuredEnv(path.join(args.profile, "peer"), false) : {}),
  });
  const node: NodeProcess = { name: "peer", port, proc, output, exited, kill: (s = "SIGKILL") => void proc.kill(s) };
  const stop = async () => {
    await stopAll([node]);
    await db.drop();
  };
  const deadline = Date.now() + 120_000;
  while (!(await fetch(`http://127.0.0.1:${port}/health/ready`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline || proc.exitCode !== null) {
      await stop();
      throw new Error(`peer not ready:\n${output().slice(-2000)}`);
    }
    await sleep(200);
  }
  return { port, pid: proc.pid ?? 0, url: db.url, stop };
}

/** The peer's run (`name`: under what), on an empty table as its first was, its rows counted as Clawfleet's are: every 202 durable. */
async function measurePeer(p: Peer, name: string): Promise<string> {
  await sql(p.url, "TRUNCATE peer_tasks");
  let before = 0;
  const { warm, o } = await warmThenLoad(p.port, () => (before = cpuMs(p.pid)));
  return `${report(name, o, await countRows(p.url, "peer_tasks"), warm)}\n${cpuLine([{ name: "peer", pid: p.pid, before }], o.length)}`;
}

async function main(): Promise<void> {
  const settings = Object.keys(CLAWFLEET_ENV).length > 0 ? `, Clawfleet's processes with ${JSON.stringify(CLAWFLEET_ENV)}` : "";
  process.stdout.write(`intake bench (${QUICK ? "quick" : "full"}): POST /v1/tasks at ${RATE}/s for ${SECONDS} s after ${WARM_SECONDS} s of warm-up, open loop${settings}; ${loadLine()}\n`);
  const p = await startPeer();
  try {
    for (const nice of NICENESS) process.stdout.write(`${await clawfleet(nice, p)}\n`);
    process.stdout.write(`${await measurePeer(p, "peer")}\n`);
  } finally {
    await p.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
