/**
 * crash - an approval gate through kill -9 of every process, on the real NATS,
 * Redis and Postgres. The agent (test/fixtures/prompts/approvals/) gates its one
 * side effect, `charge_card`, a user's tool in a process of its own
 * (test/fixtures/tools/paymentsProcess.ts, which records each charge under the
 * call's idempotency key). The roles run as two processes, the planner apart
 * from the rest (checkpoint, api, intake, metrics, rate-gateway, executor).
 *
 *   1. The task parks on the charge; every process is killed; the restarted
 *      cluster still lists the same pending call, with the same deadline.
 *   2. With no planner running, the charge is approved; every process is killed
 *      right after the decision is committed, before any planner could run it.
 *   3. Restarted, a planner runs the approved charge; every process is killed
 *      while the tool holds its answer, the charge committed.
 *   4. Restarted, the task succeeds: one charge, one decision, the model asked
 *      twice in all (the turn that asked for the charge and the one after it).
 */
import fs from "node:fs";
import path from "node:path";
import { ServiceBroker } from "moleculer";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { offersTools, pastToolCalls, startSimServer, textTurn, toolTurn, type PolicyRoute, type SimServer } from "../../src/sim";
import { ROOT, spawnCaptured, startNodeProcess, stopAll, type Captured, type NodeProcess } from "../../testkit/cluster";
import { createScratch, hasService, NATS_TEST_URL, type Scratch } from "../helpers/services";

const TOOL_PROCESS = path.join("test", "fixtures", "tools", "paymentsProcess.ts");
const PROMPTS = path.join(ROOT, "test", "fixtures", "prompts", "approvals");
const AGENT = "payments-approval";
const CORE_ROLES = "checkpoint,api,intake,metrics,rate-gateway,executor";
const CHARGE = { order_id: "ORD-7", amount: 1250 };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The model: charge the order once; a refused charge is reported, never tried again. */
const chargeRoute: PolicyRoute = {
  name: AGENT,
  matches: (req) => offersTools(req, ["charge_card"]),
  policy: (req) => {
    const last = pastToolCalls(req.messages).at(-1);
    if (!last) return toolTurn(req, "Charging the order.", [{ name: "charge_card", input: CHARGE }]);
    if (last.result?.isError === true) return textTurn(`Not charged: ${last.result.text}`);
    return textTurn(`Charged: ${last.result?.text ?? ""}`);
  },
};

interface ToolProc extends Captured {
  name: string;
}

const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - kill -9 of every process around an approval", () => {
  let scratch: Scratch;
  let sim: SimServer;
  let db: pg.Client;
  let probe: ServiceBroker;
  const nodes: NodeProcess[] = [];
  const tools: ToolProc[] = [];
  let core: NodeProcess | undefined;
  let planner: NodeProcess | undefined;
  let tool: ToolProc | undefined;

  const env = (services: string) => ({
    ...scratch.env(services),
    ANTHROPIC_BASE_URL: sim.url,
    CLAWFLEET_PROMPTS_DIR: PROMPTS,
    CLAWFLEET_LEASE_TTL_MS: "2000",
    CLAWFLEET_REAPER_INTERVAL_MS: "500",
    CLAWFLEET_REAPER_QUEUED_AFTER_MS: "1000",
  });

  const tails = () =>
    [...nodes.map((n) => ({ name: n.name, out: n.output() })), ...tools.map((t) => ({ name: t.name, out: t.output() }))]
      .map(({ name, out }) => `--- ${name}\n${out.split("\n").slice(-25).join("\n")}`)
      .join("\n");

  async function poll<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let failed: unknown;
    for (;;) {
      const v = await read().catch((err: unknown) => void (failed = err));
      if (v !== undefined && done(v)) return v;
      if (Date.now() > deadline) throw new Error(`${what}: not seen in ${timeoutMs} ms (last: ${JSON.stringify(v)}; ${String(failed)})\n${tails()}`);
      await sleep(100);
    }
  }

  const statusOf = async (id: string) => (await db.query<{ status: string }>("SELECT status FROM tasks WHERE id = $1", [id])).rows[0]?.status;

  async function startCore(): Promise<string> {
    const name = `core.${nodes.length}`;
    core = await startNodeProcess({ name, env: { ...env(CORE_ROLES), CLAWFLEET_NODE_ID: name } });
    nodes.push(core);
    return `http://127.0.0.1:${core.port}`;
  }

  async function startPlanner(): Promise<void> {
    const name = `planner.${nodes.length}`;
    planner = await startNodeProcess({ name, env: { ...env("planner"), CLAWFLEET_NODE_ID: name } });
    nodes.push(planner);
  }

  /** The user's tool process, once its broker has started. */
  async function startTool(): Promise<void> {
    const name = `tools.${tools.length + 1}`;
    const p = {
      name,
      // The charge is committed, then the answer held: the window to kill the cluster in, mid-call.
      ...spawnCaptured(["--import", "tsx", TOOL_PROCESS], {
        TRANSPORTER: NATS_TEST_URL,
        CLAWFLEET_NAMESPACE: scratch.namespace,
        DATABASE_URL: scratch.db.url,
        NODE_ID: name,
        HOLD_AFTER_COMMIT_MS: "60000",
        TOOL_TIMEOUT_MS: "30000",
      }),
    };
    tools.push(p);
    tool = p;
    await poll(`${name} ready`, async () => p.output(), (out) => out.includes('"event":"tools.ready"'), 60_000);
  }

  /**
   * Until the executor finds the tool as the planner asks for it: an approved call must reach it. Asked of the
   * running core by name: a killed one stays in the probe's registry until its heartbeats lapse.
   */
  const toolFound = () =>
    poll(
      "the executor finds charge_card",
      () => probe.call<Array<{ name: string }>, object>("executor.specs", { agent: AGENT, names: ["charge_card"] }, { nodeID: core?.name ?? "", timeout: 5_000 }),
      (specs) => specs.length === 1,
      60_000,
    );

  /** kill -9 of every Clawfleet process and the tool's. */
  async function killAll(): Promise<void> {
    const victims = [core, planner].filter((n): n is NodeProcess => n !== undefined);
    for (const n of victims) n.kill("SIGKILL");
    if (tool) tool.proc.kill("SIGKILL");
    await Promise.all([...victims.map((n) => n.exited), ...(tool ? [tool.exited] : [])]);
    core = planner = tool = undefined;
  }

  const decide = (base: string, decision: "approve" | "reject") =>
    fetch(`${base}/v1/tasks/${taskId}/approval`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ decision }) });

  let taskId = "";

  beforeAll(async () => {
    scratch = await createScratch("approvalkill");
    sim = await startSimServer({ policies: [chargeRoute] });
    db = new pg.Client({ connectionString: scratch.db.url });
    await db.connect();
    probe = new ServiceBroker({ namespace: scratch.namespace, nodeID: "probe", transporter: NATS_TEST_URL, logger: false });
    await probe.start();
  }, 60_000);

  afterAll(async () => {
    await probe?.stop();
    await db?.end().catch(() => undefined);
    await stopAll(nodes);
    for (const t of tools) t.proc.kill("SIGKILL");
    await Promise.all(tools.map((t) => t.exited));
    await sim?.close();
    await scratch?.remove();
  }, 120_000);

  it("approvalkill - the approved charge is made once and the decision recorded once, whatever is killed when", async () => {
    const startedAt = Date.now();
    const phases: string[] = [];
    let phaseStart = startedAt;
    const phase = (name: string) => {
      phases.push(`${name} ${((Date.now() - phaseStart) / 1000).toFixed(1)} s`);
      phaseStart = Date.now();
    };
    expect(fs.existsSync(path.join(PROMPTS, `${AGENT}.md`))).toBe(true);

    // 1. Parked; every process killed; the restarted cluster lists the same call.
    let base = await startCore();
    await Promise.all([startTool(), startPlanner()]);
    await toolFound();
    const submitted = await fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ agent: AGENT, input: { order_id: "ORD-7" } }) });
    expect(submitted.status).toBe(202);
    taskId = ((await submitted.json()) as { id: string }).id;
    await poll("the task parks", () => statusOf(taskId), (s) => s === "awaiting_approval");
    const before = (await db.query<{ deadline: Date; tool_use_id: string }>("SELECT deadline, tool_use_id FROM approvals WHERE task_id = $1", [taskId])).rows;
    expect(before).toHaveLength(1);
    await killAll();
    phase("parked");

    // 2. No planner: the decision is committed with the task queued, and every process is killed at once.
    base = await startCore();
    const listed = (await (await fetch(`${base}/v1/approvals?status=pending`)).json()) as { approvals: Array<{ task_id: string; deadline: string; tool_use: { id: string; name: string; input: unknown } }> };
    expect(listed.approvals.filter((a) => a.task_id === taskId)).toEqual([
      expect.objectContaining({ deadline: before[0]?.deadline.toISOString(), tool_use: { id: before[0]?.tool_use_id, name: "charge_card", input: CHARGE } }),
    ]);
    const decided = await decide(base, "approve");
    expect(decided.status).toBe(200);
    await killAll();
    expect(await statusOf(taskId)).toBe("queued");
    expect((await db.query("SELECT 1 FROM charges WHERE task_id = $1", [taskId])).rowCount).toBe(0);
    phase("decided");

    // 3. A planner runs the approved charge; every process is killed while the tool holds its answer.
    [base] = await Promise.all([startCore(), startTool()]);
    await toolFound();
    phase("restarted");
    await startPlanner();
    phase("planner");
    const again = await decide(base, "reject");
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { type: string } }).error.type).toBe("approval_decided");
    // Committed, and the tool says so (then holds its answer): the call is under way when the kill comes.
    await poll("the charge is committed", async () => tool?.output() ?? "", (out) => out.includes('"event":"charge.committed"'));
    expect((await db.query("SELECT 1 FROM charges WHERE task_id = $1", [taskId])).rowCount).toBe(1);
    await killAll();
    expect(await statusOf(taskId)).toBe("running");
    phase("mid-call");

    // 4. Restarted: the same step is asked again under the same key, and the task finishes.
    await Promise.all([startCore(), startTool()]);
    await toolFound();
    phase("restarted");
    await startPlanner();
    phase("planner");
    const status = await poll("the task ends", () => statusOf(taskId), (s) => s === "succeeded" || s === "failed", 60_000);
    if (status !== "succeeded") process.stdout.write(`${tails()}\n`);
    expect(status).toBe("succeeded");
    phase("finished");

    const key = `${taskId}:2`;
    const charges = await db.query<{ idempotency_key: string }>("SELECT idempotency_key FROM charges WHERE task_id = $1", [taskId]);
    expect(charges.rows).toEqual([{ idempotency_key: key }]);
    const lines = tools.flatMap((t) => t.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { event: string; idempotencyKey?: string }));
    expect(lines.filter((l) => l.event === "charge.committed").map((l) => l.idempotencyKey)).toEqual([key]);
    const asked = lines.filter((l) => l.event === "charge.called");
    expect(asked.every((l) => l.idempotencyKey === key)).toBe(true);
    const approvals = await db.query<{ step: number; decision: string; decided_by: string }>("SELECT step, decision, decided_by FROM approvals WHERE task_id = $1", [taskId]);
    expect(approvals.rows).toEqual([{ step: 2, decision: "approve", decided_by: "anonymous" }]);
    const steps = await db.query<{ step: number; kind: string; tool: string | null; ok: boolean | null }>(
      "SELECT step, kind, data->>'tool' AS tool, (data->>'ok')::boolean AS ok FROM steps WHERE task_id = $1 ORDER BY step",
      [taskId],
    );
    expect(steps.rows.map((s) => (s.kind === "tool" ? `${s.step}:${s.tool}:${s.ok}` : `${s.step}:llm`))).toEqual(["1:llm", "2:charge_card:true", "3:llm"]);
    // No model call for the decision: the turn that asked for the charge, and the one after its result.
    expect(sim.requests().filter((r) => r.user_id === taskId)).toHaveLength(2);
    const ledger = await db.query<{ starts: number; ok: boolean }>("SELECT starts, (outcome->>'ok')::boolean AS ok FROM tool_calls WHERE idempotency_key = $1", [key]);
    expect(ledger.rows[0]?.ok).toBe(true);
    process.stdout.write(
      `approvalkill: 1 charge, 1 decision; the charge was asked ${asked.length} times (ledger starts ${ledger.rows[0]?.starts}); ` +
        `${nodes.length} Clawfleet processes and ${tools.length} tool processes started; ${((Date.now() - startedAt) / 1000).toFixed(1)} s (${phases.join(", ")})\n`,
    );
  }, 240_000);
});
