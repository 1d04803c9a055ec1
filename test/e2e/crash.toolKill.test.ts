/**
 * crash - kill -9 of a user's tool process mid-call. One role per OS process
 * (checkpoint, api+intake+metrics, rate-gateway, executor, planner) on the real
 * NATS, Redis and Postgres, and the user's `charge_card` tool (a side effect) in
 * a process of its own (test/fixtures/tools/paymentsProcess.ts). The tool
 * commits its charge, then the process is killed before it answers; the step is
 * dispatched again while no tool can answer (and stays "outcome unknown"), and
 * only then a new process starts. The ledger sends the same step, with the same
 * idempotency key, to the new process, which finds the charge made: exactly one
 * charge, one tool step the model saw, and the task succeeds.
 */
import path from "node:path";
import fs from "node:fs";
import { ServiceBroker } from "moleculer";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { offersTools, pastToolCalls, startSimServer, textTurn, toolTurn, type PolicyRoute, type SimServer } from "../../src/sim";
import { spawnCaptured, startNodeProcess, stopAll, tempDir, type Captured, type NodeProcess } from "../../testkit/cluster";
import { createScratch, hasService, NATS_TEST_URL, type Scratch } from "../helpers/services";

const TOOL_PROCESS = path.join("test", "fixtures", "tools", "paymentsProcess.ts");

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface ToolProc extends Captured {
  name: string;
}

/** The user's tool process (through tsx, from the project root), once its broker has started. */
async function spawnTool(name: string, env: Record<string, string>): Promise<ToolProc> {
  const p = { name, ...spawnCaptured(["--import", "tsx", TOOL_PROCESS], { ...env, NODE_ID: name }) };
  let exited = false;
  void p.exited.then(() => (exited = true));
  const deadline = Date.now() + 60_000;
  while (!p.output().includes('"event":"tools.ready"')) {
    if (exited || Date.now() > deadline) throw new Error(`tool process ${name} did not start:\n${p.output()}`);
    await sleep(100);
  }
  return p;
}

/** Polls the database until the task is terminal or the deadline passes. */
async function waitTerminal(db: pg.Client, id: string, timeoutMs: number): Promise<{ status: string; error: unknown } | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = (await db.query<{ status: string; error: unknown }>("SELECT status, error FROM tasks WHERE id = $1", [id])).rows[0];
    if ((t && ["succeeded", "failed", "cancelled"].includes(t.status)) || Date.now() > deadline) return t;
    await sleep(250);
  }
}

function tails(nodes: readonly NodeProcess[], tools: readonly ToolProc[]): string {
  return [...nodes.map((n) => ({ name: n.name, out: n.output() })), ...tools.map((t) => ({ name: t.name, out: t.output() }))]
    .map(({ name, out }) => `--- ${name}\n${out.split("\n").slice(-25).join("\n")}`)
    .join("\n");
}

async function stopTool(p: ToolProc): Promise<void> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  p.proc.kill("SIGTERM");
  const t = setTimeout(() => p.proc.kill("SIGKILL"), 10_000);
  await p.exited;
  clearTimeout(t);
}

const AGENT = `---
name: payments
description: Charges an order once.
tools: [charge_card]
tiers:
  main:
    model: claude-haiku-5-5
    max_tokens: 1024
default_tier: main
---
Charge the order's amount with charge_card, once, then say what was charged.
`;

/** The model: charge the order; a failed call is called again (as a model would); then report. */
const chargeRoute: PolicyRoute = {
  name: "payments",
  matches: (req) => offersTools(req, ["charge_card"]),
  policy: (req) => {
    const last = pastToolCalls(req.messages).at(-1);
    if (!last || last.result?.isError === true) return toolTurn(req, "Charging the order.", [{ name: "charge_card", input: { order_id: "ORD-7", amount: 1250 } }]);
    return textTurn(`Charged: ${last.result?.text ?? ""}`);
  },
};

const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - kill -9 of a user's side-effect tool process mid-call", () => {
  let scratch: Scratch;
  let sim: SimServer;
  const nodes: NodeProcess[] = [];
  let prompts: { dir: string; remove(): void };
  let db: pg.Client;
  let probe: ServiceBroker;
  const tools: ToolProc[] = [];

  const toolEnv = () => ({ TRANSPORTER: NATS_TEST_URL, CLAWFLEET_NAMESPACE: scratch.namespace, DATABASE_URL: scratch.db.url, HOLD_AFTER_COMMIT_MS: "60000", TOOL_TIMEOUT_MS: "3000" });

  beforeAll(async () => {
    scratch = await createScratch("toolkill");
    prompts = tempDir("clawfleet-toolkill-");
    fs.writeFileSync(path.join(prompts.dir, "payments.md"), AGENT);
    sim = await startSimServer({ policies: [chargeRoute] });
    tools.push(await spawnTool("tools.1", toolEnv()));
    const env = (services: string) => ({
      ...scratch.env(services),
      ANTHROPIC_BASE_URL: sim.url,
      CLAWFLEET_PROMPTS_DIR: prompts.dir,
      CLAWFLEET_LEASE_TTL_MS: "2000",
      CLAWFLEET_REAPER_INTERVAL_MS: "500",
      CLAWFLEET_REAPER_QUEUED_AFTER_MS: "1000",
      // A killed node stays in the registry until its heartbeat lapses (15 s), and every try sent to it waits out
      // the tool's 3 s timeout: room for those tries, in attempts and in the ledger's limit.
      CLAWFLEET_MAX_ATTEMPTS: "10",
      CLAWFLEET_TOOL_MAX_UNKNOWN_OUTCOMES: "8",
    });
    // The checkpoint role migrates the database: it comes first.
    nodes.push(await startNodeProcess({ name: "checkpoint", env: env("checkpoint") }));
    nodes.push(
      ...(await Promise.all(
        [
          ["api", "api,intake,metrics"],
          ["rate-gateway", "rate-gateway"],
          ["executor", "executor"],
          ["planner", "planner"],
        ].map(([name, services]) => startNodeProcess({ name: name as string, env: env(services as string) })),
      )),
    );
    db = new pg.Client({ connectionString: scratch.db.url });
    await db.connect();
    // The executor sees the user's tool before any task is submitted: asked as the planner asks.
    probe = new ServiceBroker({ namespace: scratch.namespace, nodeID: "probe", transporter: NATS_TEST_URL, logger: false });
    await probe.start();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const specs = await probe.call<Array<{ name: string }>, object>("executor.specs", { agent: "payments", names: ["charge_card"] }).catch(() => []);
      if (specs.length === 1) break;
      if (Date.now() > deadline) throw new Error("the executor never found charge_card");
      await sleep(200);
    }
  }, 180_000);

  afterAll(async () => {
    await probe?.stop();
    await db?.end().catch(() => undefined);
    await stopAll(nodes);
    await Promise.all(tools.map((t) => stopTool(t)));
    await sim?.close();
    prompts?.remove();
    await scratch?.remove();
  }, 120_000);

  it("toolkill - the charge is made once, the step is asked again under the same key, the task succeeds", async () => {
    const base = `http://127.0.0.1:${nodes.find((n) => n.name === "api")?.port}`;
    const r = await fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ agent: "payments", input: { order_id: "ORD-7" } }) });
    expect(r.status).toBe(202);
    const { id } = (await r.json()) as { id: string };

    // The charge is committed and the tool holds its answer: kill -9 now, mid-call, and start a new process.
    const deadline = Date.now() + 60_000;
    while ((await db.query("SELECT 1 FROM charges WHERE task_id = $1", [id])).rowCount === 0) {
      if (Date.now() > deadline) throw new Error(`no charge for ${id}:\n${tails(nodes, tools)}`);
      await sleep(100);
    }
    const victim = tools[0] as ToolProc;
    victim.proc.kill("SIGKILL");
    await victim.exited;
    // The replacement comes only after the step was dispatched again while no tool could answer it: the
    // model must not hear of that either (the step stays "outcome unknown" and is asked again later).
    const key = `${id}:2`;
    while (((await db.query<{ starts: number }>("SELECT starts FROM tool_calls WHERE idempotency_key = $1", [key])).rows[0]?.starts ?? 0) < 2) {
      if (Date.now() > deadline) throw new Error(`the step was not dispatched again:\n${tails(nodes, tools)}`);
      await sleep(100);
    }
    tools.push(await spawnTool("tools.2", toolEnv()));

    const task = await waitTerminal(db, id, 90_000);
    if (task?.status !== "succeeded") process.stdout.write(`${tails(nodes, tools)}\n`);
    expect(task?.status, JSON.stringify(task?.error)).toBe("succeeded");

    const charges = await db.query<{ idempotency_key: string }>("SELECT idempotency_key FROM charges WHERE task_id = $1", [id]);
    expect(charges.rows).toEqual([{ idempotency_key: key }]);
    // The model called the tool once: one tool step, answered with the charge the first call made.
    const steps = await db.query<{ step: number; kind: string; tool: string | null; ok: boolean | null }>(
      "SELECT step, kind, data->>'tool' AS tool, (data->>'ok')::boolean AS ok FROM steps WHERE task_id = $1 ORDER BY step",
      [id],
    );
    expect(steps.rows.map((s) => (s.kind === "tool" ? `${s.step}:${s.tool}:${s.ok}` : `${s.step}:llm`))).toEqual(["1:llm", "2:charge_card:true", "3:llm"]);
    // Asked again under the same key, by the new process; the ledger holds the one outcome.
    const called = tools.flatMap((t) => t.output().split("\n").filter((l) => l.includes('"charge.called"')).map((l) => JSON.parse(l) as { node: string; idempotencyKey: string }));
    expect(called.map((c) => c.idempotencyKey).every((k) => k === key)).toBe(true);
    expect(called.some((c) => c.node === "tools.2")).toBe(true);
    const ledger = await db.query<{ starts: number; ok: boolean }>("SELECT starts, (outcome->>'ok')::boolean AS ok FROM tool_calls WHERE idempotency_key = $1", [key]);
    const attempts = (await db.query<{ attempts: number }>("SELECT attempts FROM tasks WHERE id = $1", [id])).rows[0]?.attempts;
    process.stdout.write(`toolkill: ${charges.rowCount} charge; the step was tried ${ledger.rows[0]?.starts} times (${called.length} reached a tool process); ${attempts} attempts\n`);
    expect(ledger.rows[0]?.ok).toBe(true);
    expect(ledger.rows[0]?.starts).toBeGreaterThanOrEqual(2);
    const result = (await db.query<{ result: unknown }>("SELECT result FROM tasks WHERE id = $1", [id])).rows[0]?.result;
    expect(JSON.stringify(result)).toContain("CH-");
  }, 180_000);
});
