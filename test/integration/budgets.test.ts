/**
 * budgets - real tasks on an embedded node (PGlite in memory, in-process tools)
 * against the simulated model over the official SDK, whose request log shows
 * what each call offered: `on_exhausted: finish` ends a task succeeded with one
 * tool-less wrap-up turn, `fail` ends it `budget_exceeded`; a submit over the
 * agent's ceiling is a 422; a task retried after a failed first attempt still
 * counts that attempt's usage; an agent past its daily cost cap gets a 429 with
 * Retry-After until 00:00 UTC.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { startNode, type ClawfleetNode } from "../../app/node";
import { secondsUntilUtcMidnight } from "../../src/budgets";
import { loadConfig } from "../../src/config";
import { UnavailableError } from "../../src/errors";
import { startSimServer, type SimServer } from "../../src/sim";
import { openStore, type OpenedStore } from "../../src/store/pgTaskStore";
import { defineTool } from "../../src/tools/define";
import { createTestDatabase, hasService, uniqueId } from "../helpers/services";

interface TaskJson {
  id: string;
  status: string;
  attempts: number;
  error: { type: string; message: string } | null;
  result: unknown;
  usage: { input_tokens: number; output_tokens: number; cost_usd: number };
  budgets: Record<string, unknown> | null;
  budget_exhausted: string | null;
}
interface StepJson {
  step: number;
  kind: "llm" | "tool";
  usage?: { input_tokens: number; output_tokens: number };
  budget_exhausted?: string;
}
interface ErrorJson {
  error: { type: string; message: string; details?: Record<string, unknown> };
}

const TIER = ["tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 256}", "default_tier: main"];
const PROBES = ["probe_a", "probe_b", "probe_c", "probe_d"];

function agentFile(name: string, tools: readonly string[], budgets: string | undefined, body = "Call each tool once, then report what they said."): string {
  return ["---", `name: ${name}`, `tools: [${tools.join(", ")}]`, ...TIER, ...(budgets ? [`budgets: ${budgets}`] : []), "---", body].join("\n");
}

function promptsDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "budgets-prompts-"));
  const write = (name: string, text: string) => fs.writeFileSync(path.join(dir, `${name}.md`), text);
  write("finisher", agentFile("finisher", PROBES, "{max_output_tokens: 1000, on_exhausted: finish}"));
  write("failer", agentFile("failer", PROBES, "{max_output_tokens: 271}"));
  // The same agent twice: one with a tool that fails its first call (a passing outage), one without budgets to measure.
  const resumeTools = ["probe_a", "flaky", "probe_b", "probe_c"];
  write("resumer", agentFile("resumer", resumeTools, "{max_input_tokens: 1000000, on_exhausted: finish}"));
  write("resumer-twin", agentFile("resumer-twin", resumeTools, undefined));
  write("capped", agentFile("capped", [], "{max_daily_cost_usd: 0.000001}", "Answer in one line."));
  return dir;
}

const probe = (name: string) =>
  defineTool({ name, description: `answers what ${name} sees`, input: z.object({}), run: () => ({ seen: `${name} is fine` }) });

/** Fails (retryably, as an unreachable back end would) the first call of each `resumer` task; answers every other. */
function flakyTool() {
  const failed = new Set<string>();
  return defineTool({
    name: "flaky",
    description: "answers what flaky sees",
    input: z.object({}),
    run: (_input, ctx) => {
      if (ctx.agent === "resumer" && !failed.has(ctx.taskId)) {
        failed.add(ctx.taskId);
        throw new UnavailableError("the flaky back end is away");
      }
      return { seen: "flaky is fine" };
    },
  });
}

let sim: SimServer;
let node: ClawfleetNode;
let base: string;
const dir = promptsDir();

beforeAll(async () => {
  sim = await startSimServer();
  const config = loadConfig({
    PORT: "0",
    CLAWFLEET_DATA_DIR: "memory://",
    CLAWFLEET_NAMESPACE: uniqueId("budgets"),
    CLAWFLEET_PROMPTS_DIR: dir,
    ANTHROPIC_BASE_URL: sim.url,
    CLAWFLEET_RETRY_BACKOFF_MS: "50",
    LOG_LEVEL: "error",
  });
  node = await startNode(config, { tools: [...PROBES.map(probe), flakyTool()] });
  base = `http://127.0.0.1:${node.port}`;
}, 60_000);

afterAll(async () => {
  await node?.stop();
  await sim?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function post(body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: { id?: string } & Partial<ErrorJson>; headers: Headers }> {
  const r = await fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as { id?: string } & Partial<ErrorJson>, headers: r.headers };
}

async function submit(body: unknown): Promise<string> {
  const r = await post(body);
  expect(r.status, JSON.stringify(r.json)).toBe(202);
  return r.json.id as string;
}

const getTask = async (id: string) => (await (await fetch(`${base}/v1/tasks/${id}`)).json()) as TaskJson;
const getSteps = async (id: string) => ((await (await fetch(`${base}/v1/tasks/${id}/steps`)).json()) as { steps: StepJson[] }).steps;

async function finished(id: string, timeoutMs = 30_000): Promise<TaskJson> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = await getTask(id);
    if (["succeeded", "failed", "cancelled"].includes(t.status)) return t;
    if (Date.now() > deadline) throw new Error(`task ${id} still ${t.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The model calls the simulator received for a task, in order, with how many tools each offered. */
const callsOf = (id: string) => sim.requests().filter((r) => r.user_id === id);
const outputOf = (steps: readonly StepJson[]) => steps.reduce((n, s) => n + (s.usage?.output_tokens ?? 0), 0);

describe("budgets - on an embedded node", () => {
  it("finish: the task ends succeeded with budget_exhausted after exactly one tool-less wrap-up call, the regular calls within the budget", async () => {
    // A lower output budget than the agent's 1000: 271 holds the first calls' 256 max_tokens, not many more.
    const id = await submit({ agent: "finisher", input: "look around", budgets: { max_output_tokens: 271 } });
    const t = await finished(id);

    expect(t).toMatchObject({ status: "succeeded", budget_exhausted: "max_output_tokens", budgets: { max_output_tokens: 271, on_exhausted: "finish" } });
    const calls = callsOf(id);
    expect(calls.filter((c) => c.tools === 0)).toHaveLength(1);
    expect(calls.at(-1)?.tools).toBe(0);
    expect(calls.slice(0, -1).every((c) => c.tools === PROBES.length)).toBe(true);
    // Unbudgeted, the simulated model calls all four tools and then answers: five calls. It was cut short.
    expect(calls.length).toBeLessThan(PROBES.length + 1);

    const steps = await getSteps(id);
    const llm = steps.filter((s) => s.kind === "llm");
    expect(llm.at(-1)?.budget_exhausted).toBe("max_output_tokens");
    const regular = llm.slice(0, -1);
    // Every regular call was reserved: what they wrote stays under the budget, and one more 256-token call could not fit.
    expect(outputOf(regular)).toBeLessThanOrEqual(271);
    expect(outputOf(regular) + 256).toBeGreaterThan(271);
  });

  it("fail: the task ends failed with budget_exceeded naming the budget, and the refused call is never made", async () => {
    const id = await submit({ agent: "failer", input: "look around" });
    const t = await finished(id);

    expect(t).toMatchObject({ status: "failed", error: { type: "budget_exceeded" }, budget_exhausted: null, budgets: { max_output_tokens: 271, on_exhausted: "fail" } });
    expect(t.error?.message).toMatch(/^output-token budget of 271 would be exceeded by the next model call/);
    const calls = callsOf(id);
    expect(calls.every((c) => c.tools === PROBES.length)).toBe(true);
    expect(t.usage.output_tokens).toBeLessThanOrEqual(271);
    expect(t.usage.output_tokens + 256).toBeGreaterThan(271);
  });

  it("a submit over the agent's ceiling, or with a budget only an agent file sets, is a 422 naming the field", async () => {
    const over = await post({ agent: "finisher", input: "x", budgets: { max_output_tokens: 1001 } });
    expect(over.status).toBe(422);
    expect(over.json.error).toMatchObject({ type: "validation_error", details: { field: "budgets.max_output_tokens", max: 1000 } });
    const daily = await post({ agent: "finisher", input: "x", budgets: { max_daily_cost_usd: 1 } });
    expect(daily.status).toBe(422);
    expect(daily.json.error?.type).toBe("validation_error");
    const bad = await post({ agent: "finisher", input: "x", budgets: { max_cost_usd: -1 } });
    expect(bad.status).toBe(422);
    expect(bad.json.error?.details?.field).toBe("budgets.max_cost_usd");
  });

  it("a task retried after its first attempt failed still counts that attempt's usage against its budget", async () => {
    // Measure the conversation on the twin (same prompt, same tools, no failure, no budget).
    const twin = await finished(await submit({ agent: "resumer-twin", input: "look around" }));
    expect(twin.status).toBe("succeeded");
    const twinLlm = (await getSteps(twin.id)).filter((s) => s.kind === "llm");
    const inputs = twinLlm.map((s) => s.usage?.input_tokens ?? 0);
    const total = inputs.reduce((a, b) => a + b, 0);
    // Less than the whole conversation, more than all of it but its first call: only counting attempt 1 stops it.
    const budget = total - (inputs[0] ?? 0);

    const id = await submit({ agent: "resumer", input: "look around", budgets: { max_input_tokens: budget } });
    const t = await finished(id);

    expect(t.attempts).toBe(2);
    expect(t).toMatchObject({ status: "succeeded", budget_exhausted: "max_input_tokens" });
    const llm = (await getSteps(id)).filter((s) => s.kind === "llm");
    const regular = llm.filter((s) => s.budget_exhausted === undefined);
    expect(regular.length).toBeLessThan(twinLlm.length);
    expect(regular.reduce((n, s) => n + (s.usage?.input_tokens ?? 0), 0)).toBeLessThanOrEqual(budget);
  });

  it("an agent past its daily cost cap gets 429 daily_budget_exhausted with Retry-After until 00:00 UTC; other agents are not held; a retry of a submit admitted before is answered", async () => {
    // Admitted while nothing is spent yet; its retry after the cap closes must still answer this task.
    const earlyKey = `capped-early-${Date.now()}`;
    const early = await post({ agent: "capped", input: "early" }, { "Idempotency-Key": earlyKey });
    expect(early.status).toBe(202);
    const first = await finished(await submit({ agent: "capped", input: "hello" }));
    expect(first.status).toBe("succeeded");
    expect(first.usage.cost_usd).toBeGreaterThan(0.000001);

    // The day's sum is read at most about once a second: a few more may be admitted before the 429.
    let refused: Awaited<ReturnType<typeof post>> | undefined;
    const deadline = Date.now() + 10_000;
    while (!refused && Date.now() < deadline) {
      const r = await post({ agent: "capped", input: "hello again" });
      if (r.status === 429) refused = r;
      else {
        expect(r.status).toBe(202);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    if (!refused) throw new Error("no 429 within 10 s");
    expect(refused.json.error).toMatchObject({ type: "daily_budget_exhausted", details: { agent: "capped", max_daily_cost_usd: 0.000001 } });
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(Math.abs(retryAfter - secondsUntilUtcMidnight(Date.now()))).toBeLessThanOrEqual(5);
    expect((await post({ agent: "finisher", input: "still welcome", budgets: { max_output_tokens: 300 } })).status).toBe(202);
    const retried = await post({ agent: "capped", input: "early" }, { "Idempotency-Key": earlyKey });
    expect(retried.status).toBe(202);
    expect(retried.json).toMatchObject({ id: early.json.id });
  });
});

/** The store's side on both backends: the columns of migration 009 and the daily sum over its index. */
function storeSuite(open: () => Promise<OpenedStore & { dispose(): Promise<void> }>): void {
  let db: OpenedStore & { dispose(): Promise<void> };
  beforeAll(async () => {
    db = await open();
  }, 60_000);
  afterAll(async () => {
    await db?.dispose();
  });

  const newTask = async (agent: string, budgets?: { max_cost_usd: number; on_exhausted: "finish" }) => {
    const id = randomUUID();
    await db.store.createTask({ id, agent, input: "x", priority: "normal", metadata: {}, prompt_version: "v1", ...(budgets ? { budgets } : {}) });
    return id;
  };
  const spend = async (id: string, cost: number) => {
    const c = await db.store.claimTask(id, "planner-a");
    if (!c) throw new Error("unclaimable");
    const usage = { input_tokens: 10, output_tokens: 10, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: cost };
    await db.store.appendStep(id, c.fence, { kind: "llm", step: 1, data: { model: "m", tier: "t", stop_reason: "end_turn", usage, content: [], duration_ms: 1, budget_exhausted: "max_cost_usd" } }, usage);
    return c.fence;
  };

  it("keeps a task's budgets and the budget a finish ended it with; a redrive clears the latter", async () => {
    const id = await newTask("store-agent", { max_cost_usd: 0.25, on_exhausted: "finish" });
    expect(await db.store.getTask(id)).toMatchObject({ budgets: { max_cost_usd: 0.25, on_exhausted: "finish" }, budget_exhausted: null });
    const fence = await spend(id, 0.1);
    expect((await db.store.listSteps(id))[0]).toMatchObject({ data: { budget_exhausted: "max_cost_usd" } });
    await db.store.finishTask(id, fence, { status: "succeeded", result: { text: "partial" }, budget_exhausted: "max_cost_usd" });
    expect(await db.store.getTask(id)).toMatchObject({ status: "succeeded", budget_exhausted: "max_cost_usd" });

    const failed = await newTask("store-agent");
    expect((await db.store.getTask(failed))?.budgets).toBeUndefined();
    const f = await spend(failed, 0.1);
    await db.store.finishTask(failed, f, { status: "failed", error: { type: "budget_exceeded", message: "cost" } });
    await db.pool.query("UPDATE tasks SET budget_exhausted = 'max_cost_usd' WHERE id = $1", [failed]);
    expect(await db.store.redrive(failed)).toBe(true);
    expect((await db.store.getTask(failed))?.budget_exhausted).toBeNull();
  });

  it("sums the cost of one agent's tasks created since a moment, through the agent-and-day index", async () => {
    const agent = `daily-${randomUUID().slice(0, 8)}`;
    const today = [await newTask(agent), await newTask(agent)];
    await spend(today[0] as string, 0.125);
    await spend(today[1] as string, 0.25);
    const old = await newTask(agent);
    await spend(old, 4);
    await db.pool.query("UPDATE tasks SET created_at = now() - interval '2 days' WHERE id = $1", [old]);
    await spend(await newTask(`${agent}-other`), 8);
    const since = new Date(Date.now() - 86_400_000).toISOString();
    expect(await db.store.agentCostSince(agent, since)).toBeCloseTo(0.375, 10);
    expect(await db.store.agentCostSince(`${agent}-none`, since)).toBe(0);

    // With sequential scans priced out, the planner reads one range of the agent's index (its rows' cost from the rows).
    const client = await db.pool.connect();
    try {
      await client.query("SET enable_seqscan = off");
      const { rows } = await client.query<{ "QUERY PLAN": string }>(
        "EXPLAIN SELECT COALESCE(sum(cost_usd), 0) AS cost FROM tasks WHERE agent = $1 AND created_at >= $2::timestamptz",
        [agent, since],
      );
      expect(rows.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/tasks_agent_created_idx/);
    } finally {
      await client.query("RESET enable_seqscan");
      client.release();
    }
  });
}

describe("budgets - the store on PGlite", () => {
  storeSuite(async () => {
    const opened = await openStore({ dataDir: "memory://" });
    return { ...opened, dispose: () => opened.close() };
  });
});

describe.skipIf(!hasService("postgres"))("budgets - the store on Postgres", () => {
  storeSuite(async () => {
    const tdb = await createTestDatabase();
    const opened = await openStore({ databaseUrl: tdb.url, max: 4 });
    return {
      ...opened,
      dispose: async () => {
        await opened.close();
        await tdb.drop();
      },
    };
  });
});
