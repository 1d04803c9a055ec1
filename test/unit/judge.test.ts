/**
 * canary judge - the verdict (src/rollout/judge.ts) on figures, simulated rollouts
 * driven through it step by step, the figures as the store counts them
 * (src/store/canaryStats.ts, PGlite) and the loop that applies verdicts
 * (src/rollout/judgeLoop.ts): once, on the revision it read, by the leader only,
 * with the event, the metrics and the log line that say so.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CANARY_JUDGE_EVENT_SCHEMAS,
  JudgeEvidenceSchema,
  type CanaryJudgeEventName,
  type Rollout,
  type VersionStats,
} from "../../src/contracts";
import { MemoryLeaseManager } from "../../src/lease/memory";
import { judgeCanary, type Verdict } from "../../src/rollout/judge";
import { CanaryJudgeLoop, JUDGE_LEASE, type JudgeLoopDeps } from "../../src/rollout/judgeLoop";
import { DrawSequence } from "../../src/sim/random";
import { openStore, type OpenedStore, type PgTaskStore } from "../../src/store/pgTaskStore";
import { Metrics } from "../../src/telemetry/metrics";

const AGENT = "order-router";
const STABLE = "aaaaaaaaaaaa";
const CANARY = "bbbbbbbbbbbb";

/** Per-task figures of one version, as a simulated policy produces them. */
interface TaskFigures {
  ok: boolean;
  toolCalls: number;
  duplicates: number;
  cost: number;
}

function versionStats(version: string, tasks: readonly TaskFigures[], sinceStep = tasks.length): VersionStats {
  const sums = (f: (t: TaskFigures) => number) => ({ sum: tasks.reduce((a, t) => a + f(t), 0), sum_sq: tasks.reduce((a, t) => a + f(t) ** 2, 0) });
  return {
    version,
    finished: tasks.length,
    succeeded: tasks.filter((t) => t.ok).length,
    finished_since_step: sinceStep,
    tool_calls: sums((t) => t.toolCalls),
    duplicate_tool_calls: sums((t) => t.duplicates),
    cost_usd: sums((t) => t.cost),
  };
}

function rollout(over: Partial<Rollout> = {}): Rollout {
  const at = "2026-03-14T09:00:00.000Z";
  return {
    agent: AGENT,
    stable_version: STABLE,
    file_version: STABLE,
    canary_version: CANARY,
    canary_weight: 5,
    steps: [5, 25, 50, 100],
    step_index: 0,
    min_tasks_per_step: 20,
    canary_state: "running",
    canary_started_at: at,
    step_started_at: at,
    decided_at: null,
    evidence: null,
    revision: 1,
    updated_at: at,
    ...over,
  };
}

const NOW = new Date("2026-03-14T09:10:00.000Z");
const routine: TaskFigures = { ok: true, toolCalls: 6, duplicates: 0, cost: 0.012 };

/**
 * The order-router's tasks in a simulated world: mostly 6 tool calls, now and then 7 (a second batch of
 * inventory checks) or 4 (an order nobody can fill), rare failures and retried reads; `checks` inventory
 * checks per warehouse (3 for "Check inventory 3 times.") adds the repeats and what they cost.
 */
function orderRouterTask(u: DrawSequence, checks = 1): TaskFigures {
  const r = u.next();
  const warehouses = r < 0.1 ? 6 : 3;
  const base = r < 0.04 ? 4 : 3 + warehouses / 3 + 2;
  const retried = u.next() < 0.03 ? 1 : 0;
  const extra = warehouses * (checks - 1);
  return {
    ok: u.next() > 0.03,
    toolCalls: base + retried + extra,
    duplicates: retried + extra,
    cost: (0.01 + 0.004 * u.next()) * (1 + 0.08 * extra),
  };
}

interface Rolled {
  outcome: "rolled_back" | "promoted" | "unfinished";
  /** Canary tasks when the judge decided, and their share of all tasks since the canary started. */
  canaryTasks: number;
  share: number;
}

/**
 * One canary rollout: tasks arrive one by one, split by the current step's weight (deterministically,
 * `weight` canary tasks in every 100), and the judge looks after every canary task, as often as it could.
 */
function simulateRollout(seed: number, canaryChecks: number, minTasks: number): Rolled {
  const u = new DrawSequence(seed, 3);
  let r = rollout({ min_tasks_per_step: minTasks });
  const stable = versionStats(STABLE, []);
  const canary = versionStats(CANARY, []);
  for (let i = 0; i < 200_000; i++) {
    const toCanary = Math.floor(((i + 1) * r.canary_weight) / 100) > Math.floor((i * r.canary_weight) / 100);
    if (!toCanary) {
      count(stable, orderRouterTask(u));
      continue;
    }
    count(canary, orderRouterTask(u, canaryChecks));
    const v = judgeCanary(r, { stable, canary }, NOW);
    const result = { canaryTasks: canary.finished, share: canary.finished / (canary.finished + stable.finished) };
    if (v.action === "rollback") return { outcome: "rolled_back", ...result };
    if (v.action === "promote") {
      if (v.final) return { outcome: "promoted", ...result };
      r = { ...r, step_index: v.stepIndex, canary_weight: v.weight };
      canary.finished_since_step = 0;
    }
  }
  return { outcome: "unfinished", canaryTasks: canary.finished, share: 0 };
}

/** Adds one finished task to a version's figures, as the store would count it. */
function count(v: VersionStats, t: TaskFigures): void {
  v.finished += 1;
  v.finished_since_step += 1;
  if (t.ok) v.succeeded += 1;
  for (const [sums, x] of [
    [v.tool_calls, t.toolCalls],
    [v.duplicate_tool_calls, t.duplicates],
    [v.cost_usd, t.cost],
  ] as const) {
    sums.sum += x;
    sums.sum_sq += x * x;
  }
}

describe("canary judge - verdicts", () => {
  it("holds until the step has its tasks, then moves up a step, and after the last one promotes", () => {
    const stable = versionStats(STABLE, Array(400).fill(routine));
    expect(judgeCanary(rollout(), { stable, canary: versionStats(CANARY, Array(19).fill(routine)) }, NOW).action).toBe("hold");
    const up = judgeCanary(rollout(), { stable, canary: versionStats(CANARY, Array(20).fill(routine)) }, NOW);
    expect(up).toMatchObject({ action: "promote", stepIndex: 1, weight: 25, final: false });
    const last = judgeCanary(rollout({ step_index: 3, canary_weight: 100 }), { stable, canary: versionStats(CANARY, Array(80).fill(routine), 20) }, NOW);
    expect(last).toMatchObject({ action: "promote", final: true });
    // A step's count is the tasks since the step started, not since the canary did.
    expect(judgeCanary(rollout({ step_index: 1, canary_weight: 25 }), { stable, canary: versionStats(CANARY, Array(60).fill(routine), 19) }, NOW).action).toBe("hold");
  });

  it("rolls back on repeated tool calls before the step is done, with the figures and the statistic as evidence", () => {
    const stable = versionStats(STABLE, Array(100).fill(routine));
    const repeats: TaskFigures = { ok: true, toolCalls: 12, duplicates: 6, cost: 0.016 };
    const v = judgeCanary(rollout(), { stable, canary: versionStats(CANARY, Array(5).fill(repeats)) }, NOW);
    expect(v.action).toBe("rollback");
    const rb = v as Extract<Verdict, { action: "rollback" }>;
    expect(rb.harmful).toEqual(["tool_calls_per_task", "duplicate_tool_calls_per_task", "cost_per_task"]);
    const e = JudgeEvidenceSchema.parse(rb.evidence);
    expect(e).toMatchObject({ test: "msprt", alpha: 0.05, step: 1, weight: 5, canary_tasks: 5, stable_tasks: 100, stable_version: STABLE, canary_version: CANARY });
    expect(e.metrics.duplicate_tool_calls_per_task).toMatchObject({ difference: 6, tolerance: 0.5, alpha: 0.0125, harmful: true, stable: { n: 100, mean: 0 }, canary: { n: 5, mean: 6 } });
    expect(e.metrics.duplicate_tool_calls_per_task.log_lambda).toBeGreaterThanOrEqual(Math.log(80));
    expect(e.metrics.completion_rate).toMatchObject({ difference: 0, harmful: false });
    // The evidence survives JSON (jsonb, the broker): no Infinity or NaN in it.
    expect(JSON.parse(JSON.stringify(e))).toEqual(e);
  });

  it("tests nothing before both versions have five finished tasks", () => {
    const stable = versionStats(STABLE, Array(100).fill(routine));
    const broken: TaskFigures = { ok: false, toolCalls: 30, duplicates: 20, cost: 1 };
    const v = judgeCanary(rollout(), { stable, canary: versionStats(CANARY, Array(4).fill(broken)) }, NOW);
    expect(v.action).toBe("hold");
    expect(v.evidence.metrics.completion_rate.log_lambda).toBeNull();
  });

  it("rolls back a canary half of whose tasks fail within 20 of them", () => {
    const stable = versionStats(STABLE, Array(400).fill(routine));
    const canary: TaskFigures[] = [];
    let v: Verdict | undefined;
    while (canary.length < 100 && v?.action !== "rollback") {
      canary.push({ ...routine, ok: canary.length % 2 === 0 });
      v = judgeCanary(rollout({ min_tasks_per_step: 1000 }), { stable, canary: versionStats(CANARY, canary) }, NOW);
    }
    expect(v).toMatchObject({ action: "rollback", harmful: ["completion_rate"] });
    expect(canary.length).toBeLessThanOrEqual(20);
  });
});

describe("canary judge - simulated rollouts, looked at after every canary task", () => {
  const RUNS = 400;
  const harmless = Array.from({ length: RUNS }, (_, k) => simulateRollout(100 + k, 1, 100));
  const falseRollbacks = harmless.filter((r) => r.outcome === "rolled_back").length / RUNS;

  it(`a harmless canary (min 100 tasks a step, 5→25→50→100) is rolled back in ${falseRollbacks} of ${RUNS} runs (bound α = 0.05), promoted in the rest`, () => {
    expect(falseRollbacks).toBeLessThanOrEqual(0.05);
    expect(harmless.filter((r) => r.outcome === "promoted").length).toBe(RUNS - harmless.filter((r) => r.outcome === "rolled_back").length);
  });

  const harmful = Array.from({ length: RUNS }, (_, k) => simulateRollout(7000 + k, 3, 20));
  const worst = Math.max(...harmful.map((r) => r.canaryTasks));
  const worstShare = Math.max(...harmful.map((r) => r.share));

  it(`"Check inventory 3 times." is rolled back in its first step in every run: after at most ${worst} canary tasks, at most ${(100 * worstShare).toFixed(1)} % of new tasks`, () => {
    expect(harmful.every((r) => r.outcome === "rolled_back")).toBe(true);
    expect(worst).toBeLessThan(20);
    expect(worstShare).toBeLessThan(0.1);
  });
});

/** One store for the file (PGlite in memory, migrated); each test uses agents of its own. */
let openedStore: OpenedStore | undefined;
beforeAll(async () => {
  openedStore = await openStore({ dataDir: "memory://" });
}, 180_000);
afterAll(async () => {
  await openedStore?.close();
});
const opened = (): OpenedStore => {
  if (!openedStore) throw new Error("store not open");
  return openedStore;
};

const usage = (cost: number) => ({ input_tokens: 100, output_tokens: 10, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: cost });

/** A task of `version` that ran the given tool calls and ended `status` (or stays running with "running"). */
async function runTask(
  store: PgTaskStore,
  agent: string,
  version: string,
  calls: ReadonlyArray<{ tool: string; input: unknown }>,
  opts: { status?: "succeeded" | "failed" | "running"; cost?: number } = {},
): Promise<string> {
  const id = randomUUID();
  await store.createTask({ id, agent, input: { order_id: "ORD-1042" }, priority: "normal", metadata: {}, prompt_version: version });
  const claim = await store.claimTask(id, "test");
  if (!claim) throw new Error("not claimed");
  let step = 1;
  await store.appendStep(id, claim.fence, { kind: "llm", step: step++, data: { model: "m", tier: "reason", stop_reason: "tool_use", usage: usage(opts.cost ?? 0.01), content: [], duration_ms: 1 } }, usage(opts.cost ?? 0.01));
  for (const c of calls) {
    const n = step++;
    await store.appendStep(id, claim.fence, { kind: "tool", step: n, data: { tool: c.tool, tool_use_id: `toolu_${n}`, input: c.input, output: {}, ok: true, duration_ms: 1, idempotency_key: `${id}:${n}` } });
  }
  const status = opts.status ?? "succeeded";
  if (status !== "running") await store.finishTask(id, claim.fence, status === "succeeded" ? { status, result: {} } : { status, error: { type: "x", message: "y" } });
  return id;
}

const ROUTE = [
  { tool: "lookup_order", input: { order_id: "ORD-1042" } },
  { tool: "list_warehouses", input: { region: "eu-west" } },
  { tool: "check_inventory", input: { warehouse_id: "WH-DUB", items: [{ sku: "A", quantity: 1 }] } },
  { tool: "route_order", input: { order_id: "ORD-1042", warehouse_id: "WH-DUB" } },
];
// The same inventory check three times; the repeats spell the input's keys in another order (jsonb equality ignores it).
const CHECK_THRICE = [
  ...ROUTE.slice(0, 3),
  { tool: "check_inventory", input: { items: [{ quantity: 1, sku: "A" }], warehouse_id: "WH-DUB" } },
  { tool: "check_inventory", input: { warehouse_id: "WH-DUB", items: [{ sku: "A", quantity: 1 }] } },
  ROUTE[3] as { tool: string; input: unknown },
];

describe("canary judge - figures from the store", () => {

  it("counts each version's finished tasks since the canary started: completions, tool calls, repeats and cost, with sums of squares", async () => {
    const { store } = opened();
    const agent = "stats-agent";
    await runTask(store, agent, STABLE, ROUTE);
    const since = new Date().toISOString();
    await runTask(store, agent, STABLE, ROUTE, { cost: 0.02 });
    await runTask(store, agent, STABLE, ROUTE.slice(0, 2), { status: "failed", cost: 0.01 });
    await runTask(store, agent, STABLE, ROUTE, { status: "running" });
    await runTask(store, agent, CANARY, CHECK_THRICE, { cost: 0.03 });
    await runTask(store, "other-agent", CANARY, CHECK_THRICE);
    await runTask(store, agent, "cccccccccccc", CHECK_THRICE);
    const stepSince = new Date().toISOString();
    await runTask(store, agent, CANARY, ROUTE, { cost: 0.01 });

    const s = await store.canaryStats(agent, STABLE, CANARY, since, stepSince);
    expect(s.stable).toMatchObject({ version: STABLE, finished: 2, succeeded: 1, finished_since_step: 0 });
    expect(s.stable.tool_calls).toEqual({ sum: 6, sum_sq: 16 + 4 });
    expect(s.stable.duplicate_tool_calls).toEqual({ sum: 0, sum_sq: 0 });
    expect(s.stable.cost_usd.sum).toBeCloseTo(0.03, 10);
    expect(s.stable.cost_usd.sum_sq).toBeCloseTo(0.0004 + 0.0001, 10);
    expect(s.canary).toMatchObject({ version: CANARY, finished: 2, succeeded: 2, finished_since_step: 1 });
    expect(s.canary.tool_calls).toEqual({ sum: 10, sum_sq: 36 + 16 });
    expect(s.canary.duplicate_tool_calls).toEqual({ sum: 2, sum_sq: 4 });
    // Without `stepSince` the step is the whole canary; a version with no tasks is all zeros.
    expect((await store.canaryStats(agent, STABLE, CANARY, since)).canary.finished_since_step).toBe(2);
    expect((await store.canaryStats(agent, "dddddddddddd", CANARY, since)).stable).toMatchObject({ finished: 0, tool_calls: { sum: 0, sum_sq: 0 } });
  });
});

interface Sent {
  name: CanaryJudgeEventName;
  payload: unknown;
}

describe("canary judge - the loop", () => {

  /** A loop on the test store; `leases` decides who leads. */
  function loop(owner: string, leases: JudgeLoopDeps["leases"], sent: Sent[], logs: Array<{ level: string; obj: Record<string, unknown> }>, metrics?: Metrics) {
    const { store } = opened();
    return new CanaryJudgeLoop(
      {
        store: () => store,
        leases,
        broadcast: (name, payload) => void sent.push({ name, payload }),
        ...(metrics ? { metrics } : {}),
        logger: { info: (obj) => void logs.push({ level: "info", obj }), warn: (obj) => void logs.push({ level: "warn", obj }) },
      },
      { owner, node: owner, intervalMs: 1000 },
    );
  }

  async function startCanary(agent: string, minTasks: number): Promise<Rollout> {
    const { store } = opened();
    await store.syncFileVersion(agent, STABLE, `---\nname: ${agent}\n---\nstable`);
    return store.startCanary(agent, CANARY, `---\nname: ${agent}\n---\ncanary`, [5, 25, 50, 100], minTasks, "test");
  }

  it("rolls a harmful canary back once, even with two judges that both think they lead, and says so", async () => {
    const { store } = opened();
    const agent = "harmful-agent";
    await startCanary(agent, 10);
    for (let i = 0; i < 20; i++) await runTask(store, agent, STABLE, ROUTE);
    for (let i = 0; i < 5; i++) await runTask(store, agent, CANARY, CHECK_THRICE);

    const sent: Sent[] = [];
    const logs: Array<{ level: string; obj: Record<string, unknown> }> = [];
    const metrics = new Metrics({ node: "n1" });
    // Two lease managers: each judge wins its own lease, as two processes would during a split.
    const [a, b] = await Promise.all([loop("a", new MemoryLeaseManager(), sent, logs, metrics).tick(), loop("b", new MemoryLeaseManager(), sent, logs, metrics).tick()]);
    const outcomes = [...(a ?? []), ...(b ?? [])].filter((o) => o.agent === agent);
    expect(outcomes.map((o) => o.verdict.action)).toEqual(["rollback", "rollback"]);
    expect(outcomes.filter((o) => o.applied)).toHaveLength(1);

    const row = await store.getRollout(agent);
    expect(row).toMatchObject({ canary_state: "rolled_back", canary_weight: 0, stable_version: STABLE });
    expect(row?.decided_at).not.toBeNull();
    const judged = JudgeEvidenceSchema.parse(row?.evidence?.judge);
    expect(judged.harmful).toContain("duplicate_tool_calls_per_task");
    expect(row?.evidence).toMatchObject({ started_by: "test", decided_by: "judge" });

    const rolledBack = sent.filter((s) => s.name === "clawfleet.control.canary_rolled_back");
    expect(rolledBack).toHaveLength(1);
    const event = CANARY_JUDGE_EVENT_SCHEMAS["clawfleet.control.canary_rolled_back"].parse(rolledBack[0]?.payload);
    expect(event).toMatchObject({ agent, version: CANARY, stable_version: STABLE, by: "judge", revision: row?.revision });
    expect(event.metrics).toContain("tool_calls_per_task");

    const warn = logs.filter((l) => l.level === "warn" && l.obj.event === "canary.rolled_back");
    expect(warn).toHaveLength(1);
    expect(warn[0]?.obj).toMatchObject({ agent, version: CANARY, canary_tasks: 5, stable_tasks: 20, metrics: expect.arrayContaining(["duplicate_tool_calls_per_task"]) });
    expect(warn[0]?.obj.evidence).toHaveProperty("duplicate_tool_calls_per_task.log_lambda");
    expect(logs.filter((l) => l.obj.event === "canary.decision_superseded")).toHaveLength(1);

    const scrape = await metrics.registry.metrics();
    expect(scrape).toContain(`clawfleet_canary_decisions_total{agent="${agent}",decision="rolled_back",node="n1"} 1`);
    // Every agent with a rollout row has its series from the first look, at 0 until it decides.
    expect(scrape).toContain(`clawfleet_canary_decisions_total{agent="${agent}",decision="promoted",node="n1"} 0`);
    // The next look finds nothing running.
    expect((await loop("a", new MemoryLeaseManager(), sent, logs).tick())?.filter((o) => o.agent === agent)).toEqual([]);
  });

  it("promotes a harmless canary step by step to stable; only the lease holder judges, and a new judge takes over from Postgres", async () => {
    const { store } = opened();
    const agent = "harmless-agent";
    await startCanary(agent, 5);
    const leases = new MemoryLeaseManager();
    const sent: Sent[] = [];
    const logs: Array<{ level: string; obj: Record<string, unknown> }> = [];
    const metrics = new Metrics({ node: "n1" });
    const leader = loop("leader", leases, sent, logs, metrics);
    const follower = loop("follower", leases, sent, logs);
    for (let i = 0; i < 20; i++) await runTask(store, agent, STABLE, ROUTE);

    const weights: number[] = [];
    for (const step of [5, 25, 50, 100]) {
      for (let i = 0; i < 5; i++) await runTask(store, agent, CANARY, ROUTE);
      expect((await store.getRollout(agent))?.canary_weight).toBe(step);
      expect(await leader.tick()).not.toBeNull();
      expect(await follower.tick()).toBeNull();
      const row = await store.getRollout(agent);
      weights.push(row?.canary_state === "running" ? (row.canary_weight ?? -1) : -1);
      if (step === 50) {
        const scrape = await metrics.registry.metrics();
        expect(scrape).toContain(`clawfleet_canary_weight{agent="${agent}",version="${CANARY}",node="n1"} 100`);
        expect(scrape).toContain(`clawfleet_canary_weight{agent="${agent}",version="${STABLE}",node="n1"} 0`);
      }
    }
    expect(weights).toEqual([25, 50, 100, -1]);
    const row = await store.getRollout(agent);
    expect(row).toMatchObject({ canary_state: "promoted", stable_version: CANARY, canary_weight: 0 });
    expect((row?.evidence?.promotions as unknown[]).map((p) => (p as { to_weight: number | null }).to_weight)).toEqual([25, 50, 100, null]);
    const promoted = sent.filter((s) => s.name === "clawfleet.control.canary_promoted").map((s) => CANARY_JUDGE_EVENT_SCHEMAS["clawfleet.control.canary_promoted"].parse(s.payload));
    expect(promoted.map((p) => [p.step, p.weight, p.final])).toEqual([
      [2, 25, false],
      [3, 50, false],
      [4, 100, false],
      [4, 0, true],
    ]);
    expect(await metrics.registry.metrics()).toContain(`clawfleet_canary_decisions_total{agent="${agent}",decision="promoted",node="n1"} 1`);
    expect(await leases.acquire(JUDGE_LEASE, "someone", 1000)).toBe(false);
  });

  it("applies nothing when the row moved on under the verdict (an operator's abort between the look and the decision wins)", async () => {
    const { store } = opened();
    const agent = "aborted-agent";
    await startCanary(agent, 1);
    for (let i = 0; i < 5; i++) await runTask(store, agent, STABLE, ROUTE);
    await runTask(store, agent, CANARY, ROUTE);
    const sent: Sent[] = [];
    const logs: Array<{ level: string; obj: Record<string, unknown> }> = [];
    // The abort lands after the judge read the figures, before it decides.
    const racing = Object.assign(Object.create(store) as PgTaskStore, {
      canaryStats: async (...args: Parameters<PgTaskStore["canaryStats"]>) => {
        const stats = await store.canaryStats(...args);
        if (args[0] === agent) await store.abortCanary(agent, "operator");
        return stats;
      },
    });
    const judge = new CanaryJudgeLoop(
      {
        store: () => racing,
        leases: new MemoryLeaseManager(),
        broadcast: (name, payload) => void sent.push({ name, payload }),
        logger: { info: (obj) => void logs.push({ level: "info", obj }), warn: (obj) => void logs.push({ level: "warn", obj }) },
      },
      { owner: "j", node: "j", intervalMs: 1000 },
    );
    const outcome = (await judge.tick())?.find((o) => o.agent === agent);
    expect(outcome).toMatchObject({ verdict: { action: "promote" }, applied: false });
    expect(await store.getRollout(agent)).toMatchObject({ canary_state: "aborted", canary_weight: 0, step_index: 0 });
    expect(sent).toEqual([]);
    expect(logs.find((l) => l.obj.event === "canary.decision_superseded")?.obj).toMatchObject({ agent, action: "promote", state: "aborted" });
  });
});
