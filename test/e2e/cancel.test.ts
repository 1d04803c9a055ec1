/**
 * cancel - 200 tasks cancelled at random moments on a distributed cluster over
 * the real NATS, Redis and Postgres: two planner processes, an executor process
 * with a slow tool service beside it, and one process with api, intake,
 * checkpoint and rate-gateway, against a `clawfleet sim` process whose model
 * calls take 700 ms (the tools take as long). Each task is cancelled at a moment
 * drawn for it: at once (queued), at any time, inside its first or second model
 * call, inside its first tool call, or (an agent whose second tool needs an
 * operator's approval) while it awaits approval. Every one must end `cancelled`,
 * with no step written after its cancel was answered, no tool started after it
 * and no model request reaching the model after it; model calls in flight are
 * aborted at the model.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster, readCheckpoints, readTasks, simRequests, sleep, startSim, stopProc, waitTerminal, type Proc } from "../../testkit/crash";
import { EXECUTOR_ROLES, ROOT } from "../../testkit/cluster";
import { createScratch, hasService, NATS_TEST_URL, REDIS_TEST_URL, type Scratch } from "../helpers/services";
import { seededRandom } from "../../testkit/random";

const TASKS = 200;
const MODEL_MS = 700;
const TOOL_MS = 700;
const SEED = Number(process.env.CLAWFLEET_CANCEL_SEED ?? 20_251);
const ready = hasService("postgres") && hasService("redis") && hasService("nats");


/**
 * When a task is cancelled: `delay` ms after its submit, or after its `nth` model request reached the model, or
 * once it awaits approval. A task a phase never comes to (it was slow to start) is cancelled when the wait ends.
 */
type Moment = { kind: "at once" } | { kind: "any time"; delay: number } | { kind: "model request"; nth: number; delay: number } | { kind: "awaiting approval" };

interface Cancel {
  id: string;
  agent: string;
  aim: string;
  status: number;
  body: unknown;
  sentAt: number;
  answeredAt: number;
}

interface SimRequest {
  user_id: string | null;
  at: number;
  aborted_at?: number;
}

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;

/** The moments drawn: a mix of every kind, each at a random offset inside its phase. */
function moments(next: () => number): Array<{ agent: string; aim: string; moment: Moment }> {
  const within = (from: number, span: number) => Math.floor(from + next() * span);
  return Array.from({ length: TASKS }, (_, i) => {
    switch (i % 6) {
      case 0:
        return { agent: "slow-worker", aim: "queued", moment: { kind: "at once" } };
      case 1:
        return { agent: "slow-worker", aim: "any", moment: { kind: "any time", delay: within(0, 2_500) } };
      case 2:
        return { agent: "slow-worker", aim: "model call 1", moment: { kind: "model request", nth: 1, delay: within(0, MODEL_MS * 0.8) } };
      case 3:
        // The first tool starts once the first model turn is answered and checkpointed.
        return { agent: "slow-worker", aim: "tool call 1", moment: { kind: "model request", nth: 1, delay: within(MODEL_MS + 100, TOOL_MS - 250) } };
      case 4:
        return { agent: "slow-worker", aim: "model call 2", moment: { kind: "model request", nth: 2, delay: within(0, MODEL_MS * 0.8) } };
      default:
        return { agent: "gated-worker", aim: "awaiting approval", moment: { kind: "awaiting approval" } };
    }
  });
}

describe.skipIf(!ready)("cancel - 200 tasks cancelled at random moments on a distributed cluster", () => {
  const drill = {} as { sim: Proc & { url: string }; cluster: Cluster; base: string; client: pg.Client };
  let scratch: Scratch | undefined;

  beforeAll(async () => {
    scratch = await createScratch("cancel");
    const sim = (drill.sim = await startSim({ latencyMs: MODEL_MS }));
    const cluster = (drill.cluster = new Cluster({
      namespace: scratch.namespace,
      databaseUrl: scratch.db.url,
      redisUrl: REDIS_TEST_URL,
      natsUrl: NATS_TEST_URL,
      simUrl: sim.url,
      env: {
        CLAWFLEET_AUTH: "off",
        CLAWFLEET_PROMPTS_DIR: `${ROOT}/test/fixtures/cancel/prompts`,
        CLAWFLEET_USER_SERVICES: `${ROOT}/test/fixtures/cancel/services/*.service.ts`,
        SLOW_TOOL_MS: String(TOOL_MS),
      },
    }));
    // Generous start-up bounds: on a busy machine each process compiles its sources first.
    const api = await cluster.start("api", "api,intake,metrics,checkpoint,rate-gateway", {}, true, 300_000);
    await Promise.all([
      cluster.start("executor-1", EXECUTOR_ROLES, {}, true, 300_000),
      cluster.start("planner-1", "planner", { CLAWFLEET_PLANNER_SLOTS: "8" }, true, 300_000),
      cluster.start("planner-2", "planner", { CLAWFLEET_PLANNER_SLOTS: "8" }, true, 300_000),
    ]);
    drill.base = `http://127.0.0.1:${api.port}`;
    drill.client = new pg.Client({ connectionString: scratch.db.url });
    await drill.client.connect();
  }, 900_000);

  afterAll(async () => {
    await drill.client?.end().catch(() => undefined);
    await drill.cluster?.stopAll();
    if (drill.sim) await stopProc(drill.sim);
    await scratch?.remove();
  }, 120_000);

  it("cancel - every task ends cancelled; nothing is written, started or asked of the model after its cancel is answered", async () => {
    const { base, client, cluster, sim } = drill;
    const drawn = moments(seededRandom(SEED));

    // One watcher for every task's progress: when each model request reached the model, and who awaits approval.
    const arrivals = new Map<string, number[]>();
    const parked = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const seen = await simRequests(sim.url);
        arrivals.clear();
        for (const r of seen) if (r.user_id !== null) arrivals.set(r.user_id, [...(arrivals.get(r.user_id) ?? []), r.at]);
        const { rows } = await client.query<{ id: string }>("SELECT id FROM tasks WHERE status = 'awaiting_approval'");
        for (const r of rows) parked.add(r.id);
        await sleep(40);
      }
    })();
    const until = async (ready: () => number | boolean | undefined, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (let v = ready(); v === undefined || v === false; v = ready()) {
        if (Date.now() > deadline) return;
        await sleep(20);
      }
    };

    const cancels = await Promise.all(
      drawn.map(async ({ agent, aim, moment }, i): Promise<Cancel> => {
        await sleep(i * 50);
        // Keyed, so the one retry below (a keep-alive socket the server closed just as it was reused) cannot make a second task.
        const submit = () =>
          fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json", "Idempotency-Key": `cancel-drill-${SEED}-${i}` }, body: JSON.stringify({ agent, input: "work" }) });
        const submitted = await submit().catch(submit);
        const { id } = (await submitted.json()) as { id: string };
        if (moment.kind === "any time") await sleep(moment.delay);
        if (moment.kind === "awaiting approval") await until(() => parked.has(id), 120_000);
        if (moment.kind === "model request") {
          await until(() => (arrivals.get(id)?.length ?? 0) >= moment.nth, 120_000);
          const arrived = arrivals.get(id)?.[moment.nth - 1] ?? Date.now();
          await sleep(Math.max(0, arrived + moment.delay - Date.now()));
        }
        const sentAt = Date.now();
        const r = await fetch(`${base}/v1/tasks/${id}/cancel`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ reason: "drill" }) });
        const body: unknown = await r.json();
        return { id, agent, aim, status: r.status, body, sentAt, answeredAt: Date.now() };
      }),
    );
    watching = false;
    await watcher;
    const ids = cancels.map((c) => c.id);
    const byId = new Map(cancels.map((c) => [c.id, c]));

    const answerMs = cancels.map((c) => c.answeredAt - c.sentAt).sort((a, b) => a - b);
    const refused = cancels.filter((c) => c.status !== 202);
    if (refused.length > 0) process.stdout.write(`cancel: ${refused.length} cancels refused, the first ${JSON.stringify(refused[0])}\n`);
    expect(refused.map((c) => ({ id: c.id, aim: c.aim, status: c.status, body: c.body }))).toEqual([]);
    for (const c of cancels) expect(c.body).toEqual({ id: c.id, status: "cancelled" });

    // Every task is cancelled now, and stays so once whatever was in flight has come back.
    expect([...(await readTasks(client, ids)).values()].filter((t) => t.status !== "cancelled")).toEqual([]);
    await sleep(MODEL_MS + TOOL_MS + 1_000);
    const tasks = await waitTerminal(client, ids, 30_000);
    expect([...tasks.values()].filter((t) => t.status !== "cancelled").map((t) => `${t.id} ${t.status}`)).toEqual([]);

    // No checkpoint after the answer (Postgres and this process share the machine's clock).
    const late = (await readCheckpoints(client, ids)).filter((s) => s.at >= (byId.get(s.task_id)?.answeredAt ?? 0));
    // No tool started after the answer, as the tool itself saw it.
    const starts = cluster.logs().filter((l) => l.event === "slow_tool.started" && typeof l.taskId === "string" && byId.has(l.taskId));
    const lateTools = starts.filter((l) => (l.at as number) >= (byId.get(l.taskId as string)?.answeredAt ?? 0));
    // No model request reached the model after the answer; the ones in flight at the cancel were aborted there.
    const requests = ((await simRequests(sim.url)) as SimRequest[]).filter((r): r is SimRequest & { user_id: string } => r.user_id !== null && byId.has(r.user_id));
    const lateRequests = requests.filter((r) => r.at >= (byId.get(r.user_id)?.answeredAt ?? 0));
    // A model request the model was still working on when the cancel was answered (it answers MODEL_MS after
    // it arrives) was aborted: its connection closed before its answer.
    const inFlight = requests.filter((r) => r.at + MODEL_MS > (byId.get(r.user_id)?.answeredAt ?? 0) + 50);
    const unaborted = inFlight.filter((r) => r.aborted_at === undefined).map((r) => ({ ...r, cancel: byId.get(r.user_id) }));
    if (late.length + lateTools.length + lateRequests.length + unaborted.length > 0) cluster.postMortem("cancel", 40, { late, lateTools, lateRequests, unaborted });
    expect(late).toEqual([]);
    expect(lateTools.map((l) => ({ taskId: l.taskId, at: l.at, node: l.node }))).toEqual([]);
    expect(lateRequests).toEqual([]);
    expect(inFlight.length).toBeGreaterThan(0);
    expect(unaborted).toEqual([]);

    // Where each cancel found its task: what intake replaced (its log line), and for a running task whether it
    // was inside a model call (its request then aborted at the model), inside a tool call, or between calls.
    const previous = new Map(cluster.logs().filter((l) => l.event === "task.cancelled" && typeof l.taskId === "string").map((l) => [l.taskId as string, l.previous_status as string]));
    const inModel = new Set(requests.filter((r) => r.aborted_at !== undefined).map((r) => r.user_id));
    const inTool = new Set(starts.filter((l) => (l.at as number) + TOOL_MS > (byId.get(l.taskId as string)?.sentAt ?? 0)).map((l) => l.taskId as string));
    const found = (id: string) => {
      const p = previous.get(id) ?? "unknown";
      if (p !== "running") return p;
      return inModel.has(id) ? "running: model call" : inTool.has(id) ? "running: tool call" : "running: between calls";
    };
    const counts: Record<string, number> = {};
    for (const id of ids) counts[found(id)] = (counts[found(id)] ?? 0) + 1;
    process.stdout.write(
      `cancel: ${TASKS} tasks cancelled (seed ${SEED}): ${JSON.stringify(counts)}; ${inModel.size} model requests aborted at the model; ` +
        `answers p50 ${percentile(answerMs, 50)} ms, p99 ${percentile(answerMs, 99)} ms, max ${answerMs.at(-1)} ms; ` +
        `${cluster.logs().filter((l) => l.event === "task.cancel_unacknowledged" && typeof l.taskId === "string" && byId.has(l.taskId)).length} answered without the planner's ack\n`,
    );
    // A task cancelled while it awaited approval is no longer listed, and a decision on it is refused.
    const pending = JSON.stringify(await (await fetch(`${base}/v1/approvals?status=pending`)).json());
    expect(ids.filter((id) => pending.includes(id))).toEqual([]);
    const parkedOne = ids.find((id) => previous.get(id) === "awaiting_approval");
    if (parkedOne !== undefined) {
      const decided = await fetch(`${base}/v1/tasks/${parkedOne}/approval`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ decision: "approve" }) });
      expect(decided.status).toBe(409);
    }
    // The drill reached every moment it aims at.
    for (const moment of ["queued", "awaiting_approval", "running: model call", "running: tool call"]) expect(counts[moment] ?? 0, moment).toBeGreaterThan(0);
  }, 900_000);
});
