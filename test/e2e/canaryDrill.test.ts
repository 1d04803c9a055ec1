/**
 * canary drill - a real node (one embedded process on a Postgres database of its
 * own, the official SDK against the simulated model at zero latency) serving the
 * order-router while two canaries of it are rolled out through the REST API, a
 * stream of orders flowing all along, and the judge left to act on its own:
 *
 * - one whose only change is the line "Check inventory 3 times." (the simulated
 *   model then checks every warehouse three times) is rolled back automatically,
 *   in its first step, before it has run 10 % of the new tasks;
 * - one whose instructions are only reworded is promoted 5 → 25 → 50 → 100 % and
 *   becomes the stable version.
 *
 * It prints the canary's share of new tasks at the rollback, the canary tasks the
 * judge needed, and the time to promotion.
 */
import fs from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JudgeEvidenceSchema, type AgentView, type JudgeEvidence } from "../../src/contracts";
import { getJson, ROOT, startNodeProcess, stopAll, submitTask, type NodeProcess, type TaskJson } from "../../testkit/cluster";
import { createTestDatabase, hasService, type TestDatabase } from "../helpers/services";

const AGENT = "order-router";
const AGENT_FILE = fs.readFileSync(path.join(ROOT, "examples", "order-router", "prompts", "order-router.md"), "utf8");
/** Tasks per step of each canary (the default steps, 5 → 25 → 50 → 100 %): few, so the drill fits in a CI run. */
const MIN_TASKS_PER_STEP = 10;

/** The harmful change: one line. */
const CHECK_THRICE = AGENT_FILE.replace("4. Route the order", "   Check inventory 3 times.\n4. Route the order");
/** The harmless change: the first instruction in other words. */
const REWORDED = AGENT_FILE.replace("1. Look the order up with `lookup_order`.", "1. Fetch the order with `lookup_order`.");

interface Stream {
  /** Stops submitting and waits for the submissions in flight; answers how many were made. */
  stop(): Promise<number>;
}

/**
 * A stream of orders that keeps `window` of the agent's tasks unfinished (queued or running): a new one goes
 * in as one ends, so the stream runs at the node's own pace and the queue never grows past the window.
 * Orders cycle through the example's world so that the versions are compared on the same mix.
 */
function submitStream(base: string, db: pg.Client, window: number): Stream {
  let running = true;
  let submitted = 0;
  const submitOne = async () => {
    const order = `ORD-${1000 + ((submitted++ * 37) % 1000)}`;
    const s = await submitTask(base, { agent: AGENT, input: { order_id: order } });
    if (s.status !== 202) throw new Error(`submit answered ${s.status}`);
  };
  const done = (async () => {
    while (running) {
      const open = await unfinished(db);
      await Promise.all(Array.from({ length: Math.max(0, window - open) }, submitOne));
      await new Promise((r) => setTimeout(r, 50));
    }
    return submitted;
  })();
  // A failure surfaces at stop(), not as an unhandled rejection meanwhile.
  done.catch(() => undefined);
  return {
    async stop() {
      running = false;
      return done;
    },
  };
}

async function unfinished(db: pg.Client): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE agent = $1 AND status IN ('queued', 'running')", [AGENT]);
  return rows[0]?.n ?? 0;
}

/** Waits until every task of the agent has finished. */
async function drained(db: pg.Client, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await unfinished(db)) > 0) {
    if (Date.now() > deadline) throw new Error("tasks still unfinished");
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function agentView(base: string): Promise<AgentView> {
  const r = await fetch(`${base}/v1/agents/${AGENT}`);
  expect(r.status).toBe(200);
  return (await r.json()) as AgentView;
}

async function startCanary(base: string, prompt: string): Promise<AgentView> {
  const r = await fetch(`${base}/v1/agents/${AGENT}/canary`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt, min_tasks_per_step: MIN_TASKS_PER_STEP }),
  });
  expect(r.status, await r.clone().text()).toBe(201);
  return (await r.json()) as AgentView;
}

/** Polls the agent until its canary has left `running` (or the deadline passes). */
async function decided(base: string, timeoutMs: number): Promise<AgentView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await agentView(base);
    if (view.canary?.state !== "running" || Date.now() > deadline) return view;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Tasks of the agent created in [from, to], by version. */
async function tasksBetween(db: pg.Client, from: string, to: string): Promise<Map<string, number>> {
  const { rows } = await db.query<{ prompt_version: string; n: number }>(
    "SELECT prompt_version, count(*)::int AS n FROM tasks WHERE agent = $1 AND created_at >= $2 AND created_at <= $3 GROUP BY prompt_version",
    [AGENT, from, to],
  );
  return new Map(rows.map((r) => [r.prompt_version, r.n]));
}

describe.skipIf(!hasService("postgres"))("canary drill - the judge rolls a harmful prompt back and promotes a harmless one", () => {
  let database: TestDatabase;
  let node: NodeProcess | undefined;
  let db: pg.Client;
  let base: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    node = await startNodeProcess({ name: "canary-drill", env: { DATABASE_URL: database.url, CLAWFLEET_SIM_LATENCY_MS: "0", CLAWFLEET_NAMESPACE: `e2e-canary-${process.pid}` } });
    base = `http://127.0.0.1:${node.port}`;
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
  }, 120_000);

  afterAll(async () => {
    // A post-mortem for a failed drill: what the judge and the tasks said.
    if (node && db) {
      const { rows } = await db.query("SELECT prompt_version, status, count(*)::int AS n FROM tasks GROUP BY 1, 2 ORDER BY 1, 2").catch(() => ({ rows: [] }));
      const lines = node
        .output()
        .split("\n")
        .filter((l) => /"level":"error"|"event":"canary\./.test(l))
        .slice(-40);
      process.stdout.write(`\ncanary drill tasks: ${JSON.stringify(rows)}\n${lines.join("\n")}\n`);
    }
    await db?.end();
    if (node) await stopAll([node]);
    await database?.drop();
  }, 60_000);

  it("rolls back \"Check inventory 3 times.\" within its first step, and promotes a reworded prompt to stable", async () => {
    const drillStart = Date.now();
    const before = await agentView(base);
    const stable = before.stable_version;

    // --- the harmful canary --------------------------------------------------------------------------
    const harmful = (await startCanary(base, CHECK_THRICE)).canary;
    expect(harmful).toMatchObject({ weight: 5, state: "running" });
    // A window of 100 open tasks: at the rollback the canary's share is measured over a few hundred new tasks.
    let stream = submitStream(base, db, 100);
    const rolledBack = await decided(base, 120_000);
    await stream.stop();
    const rb = rolledBack.canary;
    expect(rb?.state, JSON.stringify(rb)).toBe("rolled_back");
    expect(rb).toMatchObject({ version: harmful?.version, weight: 0, step: 1 });
    expect(rolledBack.stable_version).toBe(stable);
    const rbEvidence: JudgeEvidence = JudgeEvidenceSchema.parse(rb?.evidence?.judge);
    expect(rbEvidence.harmful).toContain("duplicate_tool_calls_per_task");
    expect(rbEvidence.harmful).toContain("tool_calls_per_task");
    expect(rbEvidence.weight).toBe(5);
    const created = await tasksBetween(db, rb?.started_at as string, rb?.decided_at as string);
    const canaryTasks = created.get(harmful?.version as string) ?? 0;
    const allTasks = [...created.values()].reduce((a, b) => a + b, 0);
    const share = canaryTasks / allTasks;
    const msToRollback = Date.parse(rb?.decided_at as string) - Date.parse(rb?.started_at as string);
    const dup = rbEvidence.metrics.duplicate_tool_calls_per_task;
    const calls = rbEvidence.metrics.tool_calls_per_task;
    process.stdout.write(
      `\ncanary drill: "Check inventory 3 times." rolled back after ${msToRollback} ms; its share of new tasks at the rollback: ` +
        `${canaryTasks}/${allTasks} = ${(100 * share).toFixed(1)} %; the judge needed ${rbEvidence.canary_tasks} finished canary tasks ` +
        `(against ${rbEvidence.stable_tasks} stable); tool calls per task ${calls.canary.mean.toFixed(2)} vs ${calls.stable.mean.toFixed(2)}, ` +
        `duplicates ${dup.canary.mean.toFixed(2)} vs ${dup.stable.mean.toFixed(2)} (log Λ ${dup.log_lambda?.toFixed(1)} ≥ ${dup.threshold.toFixed(2)}); harmful: ${rbEvidence.harmful.join(", ")}\n`,
    );
    expect(share).toBeLessThan(0.1);
    expect(rbEvidence.canary_tasks).toBeLessThan(MIN_TASKS_PER_STEP);

    const warn = node
      ?.output()
      .split("\n")
      .filter((l) => l.includes('"event":"canary.rolled_back"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(warn).toHaveLength(1);
    expect(warn?.[0]).toMatchObject({ level: "warn", agent: AGENT, version: harmful?.version, metrics: expect.arrayContaining(["duplicate_tool_calls_per_task"]) });
    // New tasks run the stable version again at once: the intakes heard the rollback.
    const after = await Promise.all(Array.from({ length: 20 }, () => submitTask(base, { agent: AGENT, input: { order_id: "ORD-1042" } })));
    const versions = await Promise.all(after.map(async (s) => (await getJson<TaskJson>(`${base}/v1/tasks/${s.id}`)).prompt_version));
    expect(new Set(versions)).toEqual(new Set([stable]));

    // --- the harmless canary -------------------------------------------------------------------------
    await drained(db, 120_000);
    const harmless = (await startCanary(base, REWORDED)).canary;
    expect(harmless).toMatchObject({ weight: 5, state: "running" });
    // A small window: a step's tasks do not wait behind many of the step before.
    stream = submitStream(base, db, 10);
    const promoted = await decided(base, 240_000);
    const total = await stream.stop();
    const pr = promoted.canary;
    expect(pr?.state, JSON.stringify(pr)).toBe("promoted");
    expect(promoted.stable_version).toBe(harmless?.version);
    const promotions = (pr?.evidence?.promotions as Array<{ to_weight: number | null; at: string; canary_tasks_this_step: number }>) ?? [];
    expect(promotions.map((p) => p.to_weight)).toEqual([25, 50, 100, null]);
    const msToPromotion = Date.parse(pr?.decided_at as string) - Date.parse(pr?.started_at as string);
    const prEvidence = JudgeEvidenceSchema.parse(pr?.evidence?.judge);
    expect(prEvidence.harmful).toEqual([]);
    process.stdout.write(
      `canary drill: the reworded prompt promoted to stable ${msToPromotion} ms after it started ` +
        `(steps at ${promotions.map((p) => `${Date.parse(p.at) - Date.parse(pr?.started_at as string)} ms`).join(", ")}); ` +
        `${prEvidence.canary_tasks} canary and ${prEvidence.stable_tasks} stable tasks judged; ${total} tasks submitted in this phase; ` +
        `drill ${Date.now() - drillStart} ms\n`,
    );

    const scrape = await (await fetch(`${base}/metrics`)).text();
    expect(scrape).toMatch(new RegExp(`^clawfleet_canary_decisions_total\\{agent="${AGENT}",decision="rolled_back",node="[^"]+"\\} 1$`, "m"));
    expect(scrape).toMatch(new RegExp(`^clawfleet_canary_decisions_total\\{agent="${AGENT}",decision="step",node="[^"]+"\\} 3$`, "m"));
    expect(scrape).toMatch(new RegExp(`^clawfleet_canary_decisions_total\\{agent="${AGENT}",decision="promoted",node="[^"]+"\\} 1$`, "m"));
  }, 540_000);
});
