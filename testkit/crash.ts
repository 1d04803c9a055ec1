/**
 * Crash drills: a Clawfleet cluster of real OS processes (one role per process)
 * against a separate `clawfleet sim` process, whose members can be killed,
 * paused and restarted, with every incarnation's output kept; throwaway Redis,
 * NATS and Postgres servers to restart; and the proofs the drills share
 * (right decisions, one routing effect per routed task, no checkpointed step
 * made again). Shared by the e2e crash suites and bench/recovery.ts.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type pg from "pg";
import { AgentCatalog } from "../src/agent/definition";
import { expectedRouting } from "../examples/order-router/lib/data";
import { freePort, ROOT, tempDir, type TaskView } from "./cluster";
import { EXAMPLES_ENV, EXECUTOR_ROLES, ORDER_ROUTER_PROMPTS, ORDER_ROUTER_SIM_POLICIES, packageResolutionEnv } from "./examples";

const BIN = path.join(ROOT, "bin", "clawfleet.js");

/** Whether the drills run dist/ or the sources: bin/clawfleet.js decides (bin/entry.js); reported by the benchmark. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const RUN_FROM_SOURCE = !(require("../bin/entry") as { useCompiled(): boolean }).useCompiled();

const BASE_ENV_KEYS = ["PATH", "HOME", "LANG", "TMPDIR"];

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One OS process, one incarnation: its output is kept after it exits, killed or not. */
export interface Proc {
  name: string;
  /** Moleculer node id, also the lease owner (nodes only). */
  nodeId: string;
  port: number;
  pid: number;
  startedAt: number;
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  signal(sig: NodeJS.Signals): void;
}

function spawnProc(name: string, nodeId: string, port: number, args: string[], env: Record<string, string>): Proc {
  const full: Record<string, string> = {};
  for (const k of BASE_ENV_KEYS) {
    const v = process.env[k];
    if (v !== undefined) full[k] = v;
  }
  Object.assign(full, env);
  const child = spawn(process.execPath, [BIN, ...args], { env: full, cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const chunks: string[] = [];
  let text: string | undefined;
  const append = (b: Buffer) => {
    chunks.push(b.toString());
    text = undefined;
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  let exitedFlag = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      exitedFlag = true;
      resolve({ code, signal });
    }),
  );
  return {
    name,
    nodeId,
    port,
    pid: child.pid ?? -1,
    startedAt: Date.now(),
    child,
    output: () => (text ??= chunks.join("")),
    exited,
    alive: () => !exitedFlag,
    signal: (sig) => {
      if (!exitedFlag) child.kill(sig);
    },
  };
}

/** Polls `url` until it answers 200; fails early if the process exits. */
export async function waitHttp(p: Proc, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!p.alive()) throw new Error(`${p.name} exited during start-up:\n${p.output().slice(-4000)}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${p.name} not answering ${url} after ${timeoutMs} ms:\n${p.output().slice(-4000)}`);
    await sleep(150);
  }
}

export async function stopProc(p: Proc, sig: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000): Promise<void> {
  if (!p.alive()) return;
  // A paused process ignores SIGTERM until it is continued.
  p.signal("SIGCONT");
  p.signal(sig);
  const t = setTimeout(() => p.signal("SIGKILL"), timeoutMs);
  await p.exited;
  clearTimeout(t);
}

/** `clawfleet sim` in its own process, so the model's view of every call can be read back. */
export async function startSim(opts: { latencyMs: number; timeoutMs?: number }): Promise<Proc & { url: string }> {
  const port = await freePort();
  const args = ["sim", "--port", String(port), "--latency-ms", String(opts.latencyMs), "--policies", ORDER_ROUTER_SIM_POLICIES];
  const p = spawnProc("sim", "sim", port, args, packageResolutionEnv());
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(p, `${url}/_sim/stats`, opts.timeoutMs ?? 60_000);
  return Object.assign(p, { url });
}

export interface SimRequest {
  at: number;
  user_id: string | null;
  model: string;
  turn: number;
  tools: number;
}

export async function simRequests(simUrl: string): Promise<SimRequest[]> {
  return (await (await fetch(`${simUrl}/_sim/requests`)).json()) as SimRequest[];
}

export async function simStats(simUrl: string): Promise<{ input_tokens: number; output_tokens: number; requests: number }> {
  return (await (await fetch(`${simUrl}/_sim/stats`)).json()) as { input_tokens: number; output_tokens: number; requests: number };
}

export interface ClusterOptions {
  namespace: string;
  databaseUrl: string;
  redisUrl: string;
  natsUrl: string;
  simUrl: string;
  /** Extra environment for every node (lease TTL, reaper settings…). */
  env?: Record<string, string>;
}

/**
 * The nodes of one cluster by name (`planner-1`, `executor-2`, `api`…). Each
 * (re)start is a new incarnation with its own node id (`planner-1.3`), as a
 * rescheduled pod would be; every incarnation is kept for its logs.
 */
export class Cluster {
  readonly current = new Map<string, Proc>();
  readonly incarnations: Proc[] = [];
  private readonly roles = new Map<string, { services: string; env: Record<string, string> }>();
  private readonly counts = new Map<string, number>();

  constructor(readonly opts: ClusterOptions) {}

  /** Starts (or restarts) node `name`; `ready` waits for /health/ready. */
  async start(name: string, services?: string, env: Record<string, string> = {}, ready = true, timeoutMs = 90_000): Promise<Proc> {
    if (services !== undefined) this.roles.set(name, { services, env });
    const role = this.roles.get(name);
    if (!role) throw new Error(`unknown node ${name}`);
    const n = (this.counts.get(name) ?? 0) + 1;
    this.counts.set(name, n);
    const port = await freePort();
    const nodeId = `${name}.${n}`;
    const p = spawnProc(name, nodeId, port, ["start"], {
      LOG_LEVEL: "info",
      CLAWFLEET_LOG_FORMAT: "json",
      TRANSPORTER: this.opts.natsUrl,
      REDIS_URL: this.opts.redisUrl,
      DATABASE_URL: this.opts.databaseUrl,
      ANTHROPIC_BASE_URL: this.opts.simUrl,
      CLAWFLEET_NAMESPACE: this.opts.namespace,
      CLAWFLEET_NODE_ID: nodeId,
      SERVICES: role.services,
      PORT: String(port),
      // Authentication has its own suites; the drills submit without keys.
      CLAWFLEET_AUTH: "off",
      ...EXAMPLES_ENV,
      ...packageResolutionEnv(),
      ...this.opts.env,
      ...role.env,
    });
    this.current.set(name, p);
    this.incarnations.push(p);
    if (ready) await waitHttp(p, `http://127.0.0.1:${port}/health/ready`, timeoutMs);
    return p;
  }

  get(name: string): Proc {
    const p = this.current.get(name);
    if (!p) throw new Error(`no node ${name}`);
    return p;
  }

  /** The current incarnation whose node id is `nodeId`, if it is still alive. */
  byNodeId(nodeId: string): Proc | undefined {
    return [...this.current.values()].find((p) => p.nodeId === nodeId && p.alive());
  }

  /** `kill -9`: no shutdown code runs. */
  async kill(name: string): Promise<Proc> {
    const p = this.get(name);
    p.signal("SIGKILL");
    await p.exited;
    return p;
  }

  /**
   * `kill -9`, then a replacement at once, as a Deployment would start one. The
   * replacement is not waited for: `onReady` gets its node id once it is ready.
   */
  async killAndReplace(name: string, onReady: (nodeId: string) => void): Promise<Proc> {
    await this.kill(name);
    const next = await this.start(name, undefined, {}, false);
    void waitHttp(next, `http://127.0.0.1:${next.port}/health/ready`, 180_000).then(
      () => onReady(next.nodeId),
      () => undefined,
    );
    return next;
  }

  /** Every JSON log line of every incarnation, with the incarnation's node id. */
  logs(): Array<Record<string, unknown> & { node: string }> {
    const out: Array<Record<string, unknown> & { node: string }> = [];
    for (const p of this.incarnations) {
      for (const line of p.output().split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          out.push({ ...(JSON.parse(line) as Record<string, unknown>), node: p.nodeId });
        } catch {
          // a line cut short by kill -9
        }
      }
    }
    return out;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.current.values()].map((p) => stopProc(p)));
  }

  /**
   * Writes every incarnation's output to `$CLAWFLEET_CRASH_LOGS/<label>/<node id>.log` when that
   * variable names a folder (a post-mortem of a failed drill); does nothing otherwise.
   */
  dump(label: string, extra: Record<string, string> = {}): void {
    const root = process.env.CLAWFLEET_CRASH_LOGS;
    if (!root) return;
    const dir = path.join(root, label);
    fs.mkdirSync(dir, { recursive: true });
    for (const p of this.incarnations) fs.writeFileSync(path.join(dir, `${p.nodeId}.log`), p.output());
    for (const [name, text] of Object.entries(extra)) fs.writeFileSync(path.join(dir, name), text);
  }

  /** The last lines of every incarnation, for a failure report. */
  tails(lines = 30): string {
    return this.incarnations.map((p) => `--- ${p.nodeId} (pid ${p.pid})\n${p.output().split("\n").slice(-lines).join("\n")}`).join("\n");
  }

  /** A failed proof's report: every process's last lines on stdout, and (see `dump`) all output and the findings on disk. */
  postMortem(label: string, tailLines: number, findings: Record<string, unknown>): void {
    process.stdout.write(`${this.tails(tailLines)}\n`);
    this.dump(label, { "problems.json": JSON.stringify(findings, null, 2) });
  }
}

export interface StandardLayout {
  planners: number;
  executors: number;
  plannerEnv?: Record<string, string>;
  apiEnv?: Record<string, string>;
}

/** The usual six-process layout: checkpoint first (it migrates), then the rest in parallel. */
export async function startStandardCluster(c: Cluster, layout: StandardLayout): Promise<string> {
  await c.start("checkpoint", "checkpoint");
  const started = await Promise.all([
    c.start("api", "api,intake,metrics", layout.apiEnv ?? {}),
    c.start("rate-gateway", "rate-gateway"),
    ...Array.from({ length: layout.executors }, (_, i) => c.start(`executor-${i + 1}`, EXECUTOR_ROLES)),
    ...Array.from({ length: layout.planners }, (_, i) => c.start(`planner-${i + 1}`, "planner", layout.plannerEnv ?? {})),
  ]);
  return `http://127.0.0.1:${started[0]?.port}`;
}

export type { TaskView };

/** POST /v1/tasks, retrying while the cluster sheds load or a dependency is down (only a 202 is an accepted task). */
export async function submit(base: string, input: unknown, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(`${base}/v1/tasks`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ agent: "order-router", input }),
        signal: AbortSignal.timeout(30_000),
      });
      const body = (await r.json()) as { id?: string };
      if (r.status === 202 && body.id) return body.id;
      if (r.status < 500 && r.status !== 429) throw new Error(`submit answered ${r.status}: ${JSON.stringify(body)}`);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith("submit answered")) throw err;
    }
    if (Date.now() > deadline) throw new Error("submit: no 202 before the deadline");
    await sleep(250);
  }
}

/** Polls Postgres (not the API, which may be down in a drill) until every task is terminal or the deadline passes. */
export async function waitTerminal(db: pg.Client | pg.Pool, ids: readonly string[], timeoutMs: number): Promise<Map<string, TaskView>> {
  const deadline = Date.now() + timeoutMs;
  let last = new Map<string, TaskView>();
  for (;;) {
    try {
      last = await readTasks(db, ids);
    } catch {
      // the database may be restarting
    }
    const done = [...last.values()].filter((t) => ["succeeded", "failed", "cancelled"].includes(t.status)).length;
    if (done === ids.length || Date.now() > deadline) return last;
    await sleep(300);
  }
}

export async function readTasks(db: pg.Client | pg.Pool, ids: readonly string[]): Promise<Map<string, TaskView>> {
  const { rows } = await db.query<Omit<TaskView, "usage"> & { input_tokens: string; output_tokens: string }>(
    "SELECT id, status, result, error, attempts, steps, input_tokens, output_tokens FROM tasks WHERE id = ANY($1::uuid[])",
    [ids],
  );
  // Token counts are bigints, which pg hands over as strings.
  return new Map(rows.map(({ input_tokens, output_tokens, ...t }) => [t.id, { ...t, usage: { input_tokens: Number(input_tokens), output_tokens: Number(output_tokens) } }]));
}

export interface Checkpoint {
  task_id: string;
  step: number;
  kind: "llm" | "tool";
  fence: number;
  /** created_at in epoch ms (fractional: Postgres keeps microseconds). */
  at: number;
  idempotency_key: string | null;
  /** LLM steps: the tier it ran on, and whether it asked for tools. */
  tier: string | null;
  tool_use: boolean;
}

export async function readCheckpoints(db: pg.Client | pg.Pool, ids: readonly string[]): Promise<Checkpoint[]> {
  const { rows } = await db.query<{
    task_id: string;
    step: number;
    kind: "llm" | "tool";
    fence: string;
    at: number;
    key: string | null;
    tier: string | null;
    tool_use: boolean;
  }>(
    `SELECT task_id, step, kind, fence, (extract(epoch FROM created_at) * 1000)::float8 AS at, data->>'idempotency_key' AS key,
            data->>'tier' AS tier, coalesce(data->'content' @> '[{"type": "tool_use"}]'::jsonb, false) AS tool_use
     FROM steps WHERE task_id = ANY($1::uuid[]) ORDER BY task_id, step`,
    [ids],
  );
  return rows.map((r) => ({
    task_id: r.task_id,
    step: r.step,
    kind: r.kind,
    fence: Number(r.fence),
    at: Number(r.at),
    idempotency_key: r.key,
    tier: r.tier,
    tool_use: r.tool_use,
  }));
}

/** The order router's classification tier, as its definition in prompts/ says (undefined: no tiered routing). */
const CLASSIFY_TIER = AgentCatalog.load(ORDER_ROUTER_PROMPTS).get("order-router").router?.classifyTier;

/**
 * The loop step a model request was for. The sim numbers a request by its
 * conversation (`turn`); a tiered task's conversation starts at step 2, after
 * its classification (step 1, a request offering no tools).
 */
export function stepOfRequest(r: SimRequest, classified: boolean): number {
  if (!classified) return r.turn;
  return r.tools === 0 && r.turn === 1 ? 1 : r.turn + 1;
}

/** Tasks whose step 1 is a classification (mirrors src/agent/tierRouting.ts). */
export function classifiedTasks(checkpoints: readonly Checkpoint[]): Set<string> {
  return new Set(checkpoints.filter((c) => c.step === 1 && c.kind === "llm" && c.tier === CLASSIFY_TIER && !c.tool_use).map((c) => c.task_id));
}

export interface Violation {
  task_id: string;
  step: number;
  kind: "llm" | "tool";
  checkpointAt: number;
  redoneAt: number;
  by?: string;
}

/**
 * Steps made again after their checkpoint: an LLM request for (task, step) that
 * reached the model after that step's checkpoint was written, or a tool execution
 * with that step's idempotency key logged after it. Both clocks are this machine's
 * (the sim's and executors' Date.now(), Postgres's now()), and a legitimate call
 * strictly precedes its checkpoint (request → answer → checkpoint), so no
 * tolerance is needed; millisecond truncation of the call times can only hide a
 * re-execution within 1 ms of the checkpoint, never invent one.
 */
export function reexecutedSteps(
  checkpoints: readonly Checkpoint[],
  requests: readonly SimRequest[],
  toolRuns: ReadonlyArray<{ key: string; at: number; node: string }>,
): Violation[] {
  const llmAt = new Map<string, number>();
  const toolAt = new Map<string, Checkpoint>();
  for (const c of checkpoints) {
    if (c.kind === "llm") llmAt.set(`${c.task_id}:${c.step}`, c.at);
    else if (c.idempotency_key) toolAt.set(c.idempotency_key, c);
  }
  const classified = classifiedTasks(checkpoints);
  const out: Violation[] = [];
  for (const r of requests) {
    if (r.user_id === null) continue;
    const step = stepOfRequest(r, classified.has(r.user_id));
    const at = llmAt.get(`${r.user_id}:${step}`);
    if (at !== undefined && r.at > at) out.push({ task_id: r.user_id, step, kind: "llm", checkpointAt: at, redoneAt: r.at });
  }
  for (const t of toolRuns) {
    const c = toolAt.get(t.key);
    if (c && t.at > c.at) out.push({ task_id: c.task_id, step: c.step, kind: "tool", checkpointAt: c.at, redoneAt: t.at, by: t.node });
  }
  return out;
}

/** `tool.executed` lines of every executor incarnation. */
export function toolRuns(c: Cluster): Array<{ key: string; at: number; node: string }> {
  return c
    .logs()
    .filter((l) => l.event === "tool.executed" && typeof l.idempotencyKey === "string" && typeof l.time === "string")
    .map((l) => ({ key: l.idempotencyKey as string, at: Date.parse(l.time as string), node: l.node }));
}

/** Routing effects per task, from the order router's own table. */
export async function routeCounts(db: pg.Client | pg.Pool): Promise<Map<string, number>> {
  const { rows } = await db.query<{ task_id: string; n: number }>("SELECT task_id, count(*)::int AS n FROM order_routes GROUP BY task_id");
  return new Map(rows.map((r) => [r.task_id, r.n]));
}

/** What went wrong with the outcome of `tasks` (order id by task id): wrong status or decision, missing or doubled effects. */
export async function outcomeProblems(db: pg.Client | pg.Pool, orders: ReadonlyMap<string, string>, tasks: ReadonlyMap<string, TaskView>): Promise<string[]> {
  const problems: string[] = [];
  const routes = await routeCounts(db);
  for (const [id, order] of orders) {
    const t = tasks.get(id);
    const want = expectedRouting(order);
    if (t?.status !== "succeeded") {
      problems.push(`${order} (${id}): ${t?.status ?? "missing"} ${JSON.stringify(t?.error ?? null)}`);
      continue;
    }
    const r = t.result as { order_id?: unknown; routed?: unknown; warehouse_id?: unknown } | null;
    if (r?.order_id !== order || r.routed !== want.routed || r.warehouse_id !== want.warehouse_id) {
      problems.push(`${order} (${id}): decided ${JSON.stringify(r)}, expected ${JSON.stringify(want)}`);
    }
    const n = routes.get(id) ?? 0;
    if (n !== (want.routed ? 1 : 0)) problems.push(`${order} (${id}): ${n} routing effect(s), expected ${want.routed ? 1 : 0}`);
  }
  for (const [id, n] of routes) if (!orders.has(id)) problems.push(`routing effects (${n}) for a task not submitted here: ${id}`);
  return problems;
}

/**
 * What a drill's verdict rests on, for the tasks it submitted (task id → order id):
 * the outcome problems, the checkpoints, the model requests and tool executions
 * seen for those tasks, and the checkpointed steps among them made again.
 */
export async function drillEvidence(db: pg.Client | pg.Pool, simUrl: string, cluster: Cluster, submitted: ReadonlyMap<string, string>, tasks: ReadonlyMap<string, TaskView>) {
  const problems = await outcomeProblems(db, submitted, tasks);
  const checkpoints = await readCheckpoints(db, [...submitted.keys()]);
  const requests = (await simRequests(simUrl)).filter((r) => r.user_id !== null && submitted.has(r.user_id));
  // An idempotency key starts with its task's id.
  const runs = toolRuns(cluster).filter((r) => submitted.has(r.key.slice(0, 36)));
  return { problems, checkpoints, requests, runs, redone: reexecutedSteps(checkpoints, requests, runs) };
}

// --- throwaway infrastructure -------------------------------------------------------------

export interface Server {
  url: string;
  port: number;
  start(): Promise<void>;
  /** Hard stop: kill -9 (Redis, NATS) or an immediate shutdown (Postgres). */
  crash(): Promise<void>;
  /** Stops for good and removes the data. */
  destroy(): Promise<void>;
}

async function waitPort(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const net = await import("node:net");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port });
      s.once("connect", () => (s.destroy(), resolve(true)));
      s.once("error", () => (s.destroy(), resolve(false)));
    });
    if (ok) return;
    if (!alive()) throw new Error(`server on port ${port} exited during start-up`);
    if (Date.now() > deadline) throw new Error(`nothing listening on ${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

function childServer(name: string, makeArgs: (port: number, dir: string) => [string, string[]]): (port: number) => Server {
  return (port) => {
    const dir = tempDir(`clawfleet-${name}-`);
    let child: ChildProcess | undefined;
    let log = "";
    const server: Server = {
      url: "",
      port,
      async start() {
        const [cmd, args] = makeArgs(port, dir.dir);
        const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
        c.stdout?.on("data", (b: Buffer) => (log = (log + b.toString()).slice(-20_000)));
        c.stderr?.on("data", (b: Buffer) => (log = (log + b.toString()).slice(-20_000)));
        child = c;
        let exited = false;
        c.once("exit", () => (exited = true));
        try {
          await waitPort(port, 20_000, () => !exited);
        } catch (err) {
          throw new Error(`${name}: ${(err as Error).message}\n${log}`);
        }
      },
      async crash() {
        const c = child;
        if (!c || c.exitCode !== null || c.signalCode !== null) return;
        const done = new Promise((r) => c.once("exit", r));
        c.kill("SIGKILL");
        await done;
      },
      async destroy() {
        await server.crash();
        dir.remove();
      },
    };
    return server;
  };
}

/** redis-server keeping nothing on disk (`--save ""`, no AOF): a restart comes back empty. */
export async function redisServer(): Promise<Server> {
  const port = await freePort();
  const s = childServer("redis", (p, dir) => ["redis-server", ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]])(port);
  return Object.assign(s, { url: `redis://127.0.0.1:${port}` });
}

/** nats-server with JetStream in a temp store dir. */
export async function natsServer(): Promise<Server> {
  const port = await freePort();
  const s = childServer("nats", (p, dir) => ["nats-server", ["-a", "127.0.0.1", "-p", String(p), "-js", "-sd", dir]])(port);
  return Object.assign(s, { url: `nats://127.0.0.1:${port}` });
}

const PG_BIN = "/usr/lib/postgresql/15/bin";

/** A temp Postgres cluster (initdb) run as user postgres, since Postgres refuses root; trust auth on 127.0.0.1. */
export async function postgresServer(): Promise<Server> {
  const port = await freePort();
  const dir = tempDir("clawfleet-pg-");
  fs.chmodSync(dir.dir, 0o755);
  const data = path.join(dir.dir, "data");
  const logFile = path.join(dir.dir, "pg.log");
  const asPostgres = (cmd: string, args: string[]) => {
    const r = spawnSync("runuser", ["-u", "postgres", "--", path.join(PG_BIN, cmd), ...args], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stdout}\n${r.stderr}\n${fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(-4000) : ""}`);
  };
  spawnSync("chown", ["postgres:postgres", dir.dir]);
  asPostgres("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  let running = false;
  const server: Server = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      asPostgres("pg_ctl", ["-D", data, "-l", logFile, "-w", "-t", "60", "-o", `-p ${port} -k ${dir.dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "start"]);
      running = true;
    },
    async crash() {
      if (!running) return;
      // Immediate mode: no checkpoint, connections cut; the next start runs crash recovery.
      asPostgres("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      running = false;
    },
    async destroy() {
      if (running) {
        try {
          asPostgres("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
        } catch {
          // already gone
        }
      }
      running = false;
      dir.remove();
    },
  };
  return server;
}

/** Percentile of sorted numbers (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

export { freePort, tempDir };
