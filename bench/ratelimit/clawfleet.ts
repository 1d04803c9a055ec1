/**
 * Contender "Clawfleet": a real distributed cluster (one OS process per role,
 * NATS, Redis, Postgres) with the rate gateway's Redis buckets, fed a burst of
 * order-router tasks over the REST API.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { startNode, type Proc } from "./procs";
import { EXECUTOR_ROLES, ORDER_ROUTER_PROMPTS } from "../../testkit/examples";

export const POSTGRES_ADMIN_URL = process.env.CLAWFLEET_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const REDIS_URL = process.env.CLAWFLEET_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const NATS_URL = process.env.CLAWFLEET_TEST_NATS_URL ?? "nats://127.0.0.1:4222";

export interface Arrival {
  order: string;
  /** ms after the burst starts */
  at: number;
}

export interface TaskOutcome {
  ok: boolean;
  latencyMs: number;
  /** epoch ms */
  doneAt: number;
}

export interface ContenderRun {
  tasks: TaskOutcome[];
  /** first arrival → last task done */
  wallMs: number;
  /** epoch ms the burst started */
  startedAt: number;
}

/** The agent as shipped, minus its router: the rate-limit benchmark keeps every call on one model and one limit. */
export function singleTierPrompts(): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cf-bench-prompts-"));
  const src = fs.readFileSync(path.join(ORDER_ROUTER_PROMPTS, "order-router.md"), "utf8");
  const stripped = src.replace(/^router:\n(?:[ \t]+.*\n)+/m, "");
  fs.writeFileSync(path.join(dir, "order-router.md"), stripped);
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

async function adminQuery(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export interface ClusterOptions {
  simUrl: string;
  planners: number;
  slots: number;
  env: Record<string, string>;
}

export interface Cluster {
  base: string;
  db: string;
  namespace: string;
  nodes: Proc[];
  stop(): Promise<void>;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const namespace = `cfbench${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const dbName = `clawfleet_bench_${namespace}`;
  await adminQuery(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(POSTGRES_ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;
  const prompts = singleTierPrompts();
  const env = (services: string) => ({
    TRANSPORTER: NATS_URL,
    REDIS_URL,
    DATABASE_URL: dbUrl.toString(),
    CLAWFLEET_NAMESPACE: namespace,
    SERVICES: services,
    ANTHROPIC_BASE_URL: o.simUrl,
    CLAWFLEET_PROMPTS_DIR: prompts.dir,
    CLAWFLEET_PLANNER_SLOTS: String(o.slots),
    CLAWFLEET_AUTH: "off",
    ...o.env,
  });
  const nodes: Proc[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    prompts.remove();
    await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    const redis = new Redis(REDIS_URL);
    try {
      const keys = await redis.keys(`${namespace}*`);
      if (keys.length > 0) await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
  };
  const track = (p: Proc) => nodes.push(p);
  try {
    // The checkpoint role migrates the database: first, so the others find the schema.
    await startNode("checkpoint", env("checkpoint"), track);
    const rest = await Promise.all([
      startNode("rate-gateway", env("rate-gateway"), track),
      startNode("executor", env(EXECUTOR_ROLES), track),
      ...Array.from({ length: o.planners }, (_, i) => startNode(`planner-${i + 1}`, env("planner"), track)),
      startNode("api", env("api,intake,metrics"), track),
    ]);
    const api = rest.at(-1) as Proc;
    return { base: `http://127.0.0.1:${api.port}`, db: dbUrl.toString(), namespace, nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Submits the burst on schedule, waits for every task to finish, reads the outcomes from Postgres. */
export async function runBurst(cluster: Cluster, arrivals: readonly Arrival[], timeoutMs: number): Promise<ContenderRun> {
  const startedAt = Date.now();
  const submits = arrivals.map(async (a) => {
    await new Promise((r) => setTimeout(r, Math.max(0, startedAt + a.at - Date.now())));
    const r = await fetch(`${cluster.base}/v1/tasks`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ agent: "order-router", input: { order_id: a.order } }),
    });
    if (r.status !== 202) throw new Error(`submit answered ${r.status}: ${await r.text()}`);
  });
  await Promise.all(submits);
  const db = new pg.Client({ connectionString: cluster.db });
  await db.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE status IN ('succeeded', 'failed')");
      if ((rows[0]?.n ?? 0) >= arrivals.length) break;
      if (Date.now() > deadline) throw new Error(`only ${rows[0]?.n} of ${arrivals.length} tasks finished in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const { rows } = await db.query<{ status: string; created: number; finished: number }>(
      "SELECT status, extract(epoch FROM created_at) * 1000 AS created, extract(epoch FROM finished_at) * 1000 AS finished FROM tasks",
    );
    const tasks = rows.map((r) => ({ ok: r.status === "succeeded", latencyMs: Number(r.finished) - Number(r.created), doneAt: Number(r.finished) }));
    const lastDone = Math.max(...rows.map((r) => Number(r.finished)));
    return { tasks, wallMs: lastDone - startedAt, startedAt };
  } finally {
    await db.end();
  }
}
