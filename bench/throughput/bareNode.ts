/**
 * The bare pipeline: the throughput benchmark's peer. It moves a task through the
 * same infrastructure as an order-router task in Clawfleet — the same queue
 * (the @moleculer/channels middleware as Clawfleet configures it), the same
 * number of Moleculer calls, events and Postgres commits per task, on the same
 * transporter, Redis and Postgres — and does nothing else: no validation, no
 * agent, no model, no leases, no rate limits. What it reaches is the ceiling
 * the infrastructure allows; Clawfleet's throughput over it is the ratio.
 *
 * One task: POST /v1/tasks → bare-api.submit → bare-intake.submit, which inserts the task
 * itself (a commit, on its own connection, as Clawfleet's intake does) → a queue message; a planner takes it and makes `storeCalls` calls to
 * bare-store (the rest of the commits), `modelTurns` calls to bare-gateway.complete,
 * `toolCalls` calls to bare-executor.run (which calls bare-tools.run), and emits
 * `events` events (one from the intake) that bare-api listens to.
 *
 * With BARE_PROVIDER_URL, the gateway also makes each model turn an HTTP call to that simulated provider
 * (`POST /v1/messages`, a fixed order-router request: the agent's prompt, its four tools, the order) and
 * parses the answer: the provider's round trip, which Clawfleet's model turns make too, then weighs on both
 * sides. BARE_PROVIDER_CLIENT says how: `http` (the default), a kept-alive node:http agent with no SDK; `sdk`,
 * the official Anthropic SDK's `messages.create`, set up as Clawfleet's rate gateway sets it up, with nothing
 * of Clawfleet's around it (providerCall.ts). The node prints which client it was given.
 *
 * Run by the benchmark as `node --require tsx/cjs bench/throughput/bareNode.ts` with
 * BARE_PLAN (required: JSON, a BarePlan of barePlan.ts, which also spreads its commits over the
 * store's calls), BARE_ROLES (api,intake,store,gateway,executor,tools,planner; default all),
 * PORT, CLAWFLEET_PLANNER_SLOTS, BARE_PROVIDER_URL and BARE_PROVIDER_CLIENT (optional), and TRANSPORTER, REDIS_URL,
 * DATABASE_URL, CLAWFLEET_NAMESPACE — or none of these four: one process, PGlite
 * in memory and the in-process queue, as Clawfleet's embedded mode.
 */
import http from "node:http";
import { randomUUID } from "node:crypto";
import { ServiceBroker, type Context, type ServiceSchema } from "moleculer";
import { channelsMiddleware, sendToChannel } from "../../src/queue/channels";
import { createPool } from "../../src/store/pool";
import { planProblem, statementsPerCall, type BarePlan } from "./barePlan";
import { providerCall, providerClient } from "./providerCall";

export const BARE_ROLES = ["api", "intake", "store", "gateway", "executor", "tools", "planner"] as const;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  id uuid PRIMARY KEY, status text NOT NULL DEFAULT 'queued', steps integer NOT NULL DEFAULT 0,
  input jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz);
CREATE INDEX IF NOT EXISTS tasks_status_idx ON tasks (status);
CREATE TABLE IF NOT EXISTS steps (task_id uuid NOT NULL, step integer NOT NULL, data jsonb NOT NULL, PRIMARY KEY (task_id, step));`;

const env = process.env;
if (env.BARE_PLAN === undefined) throw new Error("BARE_PLAN is required: the counts per task to do, as JSON (barePlan.ts)");
const plan = JSON.parse(env.BARE_PLAN) as BarePlan;
const roles = new Set((env.BARE_ROLES ?? BARE_ROLES.join(",")).split(","));
const distributed = env.TRANSPORTER !== undefined;
const slots = Number(env.CLAWFLEET_PLANNER_SLOTS ?? 4);
const CHANNEL = "bare.tasks";
const problem = planProblem(plan);
if (problem) throw new Error(`BARE_PLAN: ${problem}`);
/** Statements per store call, and the task's step number each call's first insert takes. */
const perCall = statementsPerCall(plan);
const firstStep = perCall.map((_, i) => perCall.slice(0, i).reduce((s, n) => s + n, 0));

async function main(): Promise<void> {
  const broker = new ServiceBroker({
    namespace: env.CLAWFLEET_NAMESPACE ?? "bare",
    nodeID: `bare-${[...roles].join("-")}-${process.pid}`,
    transporter: env.TRANSPORTER ?? null,
    serializer: "JSON",
    logLevel: "warn",
    requestTimeout: 0,
    registry: { strategy: "RoundRobin", preferLocal: true },
    heartbeatInterval: 5,
    heartbeatTimeout: 15,
    middlewares: [
      distributed
        ? channelsMiddleware({ mode: "distributed", redisUrl: env.REDIS_URL ?? "", namespace: env.CLAWFLEET_NAMESPACE ?? "bare" })
        : channelsMiddleware({ mode: "embedded" }),
    ],
  });
  const db = roles.has("store") || roles.has("intake") || (!distributed && roles.has("api")) ? await createPool(distributed ? { databaseUrl: env.DATABASE_URL ?? "", max: 10 } : { dataDir: "memory://" }) : undefined;
  if (roles.has("store") && db) await db.pool.query(SCHEMA);
  const insertTask = (id: string, input: unknown) => pool?.query("INSERT INTO tasks (id, input) VALUES ($1, $2)", [id, JSON.stringify(input)]);
  const pool = db?.pool;

  const services: ServiceSchema[] = [];
  if (roles.has("store"))
    services.push({
      name: "bare-store",
      actions: {
        op: async (ctx: Context<{ id: string; i: number; last: boolean }>) => {
          const { id, i, last } = ctx.params;
          const n = perCall[i] ?? 0;
          for (let k = 0; k < n; k++) {
            // `steps` as Clawfleet counts them: one per model turn and per tool call.
            if (last && k === n - 1) await pool?.query("UPDATE tasks SET status = 'succeeded', steps = $2, finished_at = now() WHERE id = $1", [id, plan.modelTurns + plan.toolCalls]);
            else await pool?.query("INSERT INTO steps (task_id, step, data) VALUES ($1, $2, $3)", [id, (firstStep[i] ?? 0) + k, JSON.stringify({ i, k })]);
          }
          return { ok: true };
        },
      },
    });
  const client = providerClient(env.BARE_PROVIDER_CLIENT);
  const ask = env.BARE_PROVIDER_URL === undefined || !roles.has("gateway") ? undefined : providerCall(env.BARE_PROVIDER_URL, client);
  // Said once, so that a run (and its test) can tell which client made the calls.
  if (ask) process.stdout.write(`bare gateway: each model turn goes to ${env.BARE_PROVIDER_URL} through ${client}\n`);
  if (roles.has("gateway"))
    services.push({
      name: "bare-gateway",
      actions: { complete: async (ctx: Context<{ turn: number }>) => ({ turn: ctx.params.turn, text: ask ? await ask() : "ok" }) },
    });
  if (roles.has("tools")) services.push({ name: "bare-tools", actions: { run: (ctx: Context<{ call: number }>) => ({ call: ctx.params.call, result: "ok" }) } });
  if (roles.has("executor"))
    services.push({ name: "bare-executor", actions: { run: (ctx: Context<{ call: number }>) => ctx.call("bare-tools.run", { call: ctx.params.call }) } });
  if (roles.has("intake"))
    services.push({
      name: "bare-intake",
      actions: {
        submit: async (ctx: Context<{ input: unknown }>) => {
          const id = randomUUID();
          await insertTask(id, ctx.params.input);
          await sendToChannel(broker, CHANNEL, { id });
          void ctx.emit("bare.task.queued", { id });
          return { id, status: "queued" };
        },
      },
    });
  if (roles.has("planner"))
    services.push({
      name: "bare-planner",
      channels: {
        [CHANNEL]: {
          group: "bare-planners",
          maxInFlight: slots,
          handler: async (payload: { id: string }) => runTask(broker, payload.id),
        },
      },
    });
  if (roles.has("api"))
    services.push({
      name: "bare-api",
      actions: { submit: (ctx: Context<{ input: unknown }>) => ctx.call("bare-intake.submit", ctx.params) },
      events: { "bare.task.*": () => undefined },
    });
  for (const s of services) broker.createService(s);
  await broker.start();
  // The node that takes submits is ready once every service is reachable; the others at once (they start first).
  if (roles.has("api")) await broker.waitForServices(["bare-store", "bare-gateway", "bare-executor", "bare-tools", "bare-intake", "bare-api"], 300_000);

  http
    .createServer((req, res) => {
      void serve(broker, pool, req, res).catch((err: unknown) => {
        res.writeHead(500, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: { type: "internal", message: String(err) } }));
      });
    })
    .listen(Number(env.PORT ?? 0), "127.0.0.1");
  const stop = () => void broker.stop().then(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

/** The planner's part of one task: the calls and events of the plan, in the order Clawfleet makes them. */
async function runTask(broker: ServiceBroker, id: string): Promise<void> {
  let store = 0;
  const storeCall = (last = false) => broker.call("bare-store.op", { id, i: store++, last });
  let events = 1;
  const emit = (name: string) => {
    if (events++ < plan.events) void broker.emit(name, { id });
  };
  // Claim, read the task, read its steps: Clawfleet's claimNext, getTask, listSteps.
  const before = Math.max(0, plan.storeCalls - plan.modelTurns - plan.toolCalls - 1);
  for (let i = 0; i < before; i++) await storeCall();
  emit("bare.task.started");
  const turns = Math.max(plan.modelTurns, plan.toolCalls);
  for (let t = 0; t < turns; t++) {
    if (t < plan.modelTurns) {
      await broker.call("bare-gateway.complete", { turn: t });
      if (store < plan.storeCalls - 1) await storeCall();
      emit("bare.task.step");
    }
    if (t < plan.toolCalls) {
      await broker.call("bare-executor.run", { call: t });
      if (store < plan.storeCalls - 1) await storeCall();
      emit("bare.task.step");
    }
  }
  while (store < plan.storeCalls - 1) await storeCall();
  await storeCall(true);
  while (events < plan.events) emit("bare.task.step");
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

/** POST /v1/tasks, GET /v1/tasks?status= (what the benchmark's driver reads), GET /health/ready. */
async function serve(broker: ServiceBroker, pool: { query: (sql: string, values?: unknown[]) => Promise<{ rows: unknown[] }> } | undefined, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const json = (status: number, body: unknown) => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (url.pathname === "/health/ready") return json(200, { ready: true });
  if (url.pathname === "/v1/tasks" && req.method === "POST") {
    const body = JSON.parse(await readBody(req)) as { input: unknown };
    return json(202, await broker.call("bare-api.submit", { input: body.input }));
  }
  if (url.pathname === "/v1/tasks" && req.method === "GET" && pool) {
    const r = await pool.query("SELECT id, status, steps, finished_at FROM tasks WHERE status = $1", [url.searchParams.get("status") ?? "succeeded"]);
    return json(200, { tasks: r.rows, next_cursor: null });
  }
  json(404, { error: { type: "not_found", message: url.pathname } });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
