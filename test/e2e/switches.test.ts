/**
 * switches - kill switches in a real `clawfleet start` process (embedded: PGlite,
 * the in-process queue, the simulated model behind the official SDK), driven
 * over REST: a paused agent's tasks are accepted and stay queued, then all run
 * to success once it lifts, woken by the lift alone (the reaper is kept out of
 * it); a task about to call a paused tool or model waits before the call and
 * finishes once it lifts; `in_flight: abort` cancels the work under way.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, startNodeProcess, stopAll, submitTask, tempDir, waitForTasks, type NodeProcess, type TaskJson } from "../../testkit/cluster";
import { ORDER_ROUTER_PROMPTS } from "../../testkit/examples";

/** A second agent, with no tools, so that something else runs while order-router is paused. */
const ECHO = ["---", "name: echo", "description: Says it back.", "tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 256}", "default_tier: main", "---", "Answer in one line."].join("\n");

interface SwitchJson {
  kind: string;
  name: string;
  paused: boolean;
  in_flight: string;
  updated_by: string;
  version: number;
}

interface StepJson {
  kind: string;
  tool?: string;
}

describe("switches - one embedded node over REST", () => {
  const data = tempDir("clawfleet-switches-");
  const prompts = tempDir("clawfleet-switches-prompts-");
  let node: NodeProcess;
  let base: string;

  beforeAll(async () => {
    fs.copyFileSync(path.join(ORDER_ROUTER_PROMPTS, "order-router.md"), path.join(prompts.dir, "order-router.md"));
    fs.writeFileSync(path.join(prompts.dir, "echo.md"), ECHO);
    node = await startNodeProcess({
      name: "switches",
      env: {
        CLAWFLEET_DATA_DIR: data.dir,
        CLAWFLEET_NAMESPACE: `e2e-switches-${process.pid}`,
        CLAWFLEET_PROMPTS_DIR: prompts.dir,
        CLAWFLEET_SIM_LATENCY_MS: "20",
        // No sweep within the tests: only the lift's own wake-ups can start what waited for it.
        CLAWFLEET_REAPER_INTERVAL_MS: "600000",
      },
      timeoutMs: 110_000,
    });
    base = `http://127.0.0.1:${node.port}`;
  }, 120_000);

  afterAll(async () => {
    if (node) await stopAll([node]);
    data.remove();
    prompts.remove();
  });

  async function put(kind: string, name: string, body: unknown): Promise<{ status: number; body: SwitchJson & { error?: { type: string; details?: { field?: string } } } }> {
    const r = await fetch(`${base}/v1/switches/${kind}/${name}`, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as SwitchJson & { error?: { type: string } } };
  }

  const task = (id: string) => getJson<TaskJson & { started_at: string | null }>(`${base}/v1/tasks/${id}`);
  const steps = async (id: string) => (await getJson<{ steps: StepJson[] }>(`${base}/v1/tasks/${id}/steps`)).steps;
  const order = (n: number) => ({ agent: "order-router", input: { order_id: `ORD-10${String(n).padStart(2, "0")}` } });

  /** Resolves once the node has logged that `taskId` waits at a paused switch. */
  async function heldAt(taskId: string, timeoutMs = 30_000): Promise<void> {
    const held = (l: string) => l.includes('"switch.held"') && l.includes(taskId);
    await expect.poll(() => node.output().split("\n").some(held), { timeout: timeoutMs, interval: 50 }).toBe(true);
  }

  it("refuses an unknown kind (404) and a bad body (422 naming the field); lists what it stored", async () => {
    expect((await put("planet", "mars", { paused: true })).status).toBe(404);
    const bad = await put("tool", "lookup_order", { paused: "yes" });
    expect(bad.status).toBe(422);
    expect(bad.body.error?.details?.field).toBe("paused");
    expect((await put("agent", "nobody", { paused: true })).status).toBe(404);
  });

  it("a paused agent's tasks are accepted and stay queued while other agents run; lifted, they all run to success", async () => {
    const paused = await put("agent", "order-router", { paused: true });
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ kind: "agent", name: "order-router", paused: true, in_flight: "drain", updated_by: "anonymous" });

    const submitted = await Promise.all(Array.from({ length: 5 }, (_, i) => submitTask(base, order(i + 1))));
    for (const s of submitted) expect(s.status).toBe(202);
    const ids = submitted.map((s) => s.id);
    // Their wake-ups went out first: by the time another agent's task has run, each of them was passed over.
    const echo = await submitTask(base, { agent: "echo", input: "hello" });
    expect((await waitForTasks(base, [echo.id], 30_000)).get(echo.id)?.status).toBe("succeeded");
    for (const id of ids) expect(await task(id)).toMatchObject({ status: "queued", attempts: 0, started_at: null });

    const listed = await getJson<SwitchJson[]>(`${base}/v1/switches`);
    expect(listed.find((s) => s.kind === "agent" && s.name === "order-router")).toMatchObject({ paused: true });
    expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^clawfleet_switch_paused\{kind="agent",name="order-router"[^}]*\} 1$/m);
    expect(node.output()).toMatch(/"event":"switch.changed".*"by":"anonymous"|"by":"anonymous".*"event":"switch.changed"/);

    expect((await put("agent", "order-router", { paused: false })).body).toMatchObject({ paused: false });
    const done = await waitForTasks(base, ids, 60_000);
    expect([...done.values()].map((t) => t.status)).toEqual(Array(5).fill("succeeded"));
  }, 120_000);

  it("a task about to call a paused tool waits before it, running and holding its lease, and finishes once the tool is lifted", async () => {
    expect((await put("tool", "lookup_order", { paused: true })).status).toBe(200);
    const { id } = await submitTask(base, order(11));
    await heldAt(id);
    expect(await task(id)).toMatchObject({ status: "running", attempts: 1 });
    expect((await steps(id)).filter((s) => s.kind === "tool")).toEqual([]);

    expect((await put("tool", "lookup_order", { paused: false })).status).toBe(200);
    expect((await waitForTasks(base, [id], 60_000)).get(id)).toMatchObject({ status: "succeeded", attempts: 1 });
    expect((await steps(id)).find((s) => s.kind === "tool")?.tool).toBe("lookup_order");
  }, 120_000);

  it("a task about to call a paused model waits before the call, and finishes once the model is lifted", async () => {
    // order-router classifies on claude-haiku-5-5 first (its `classify` tier).
    expect((await put("model", "claude-haiku-5-5", { paused: true })).status).toBe(200);
    const { id } = await submitTask(base, order(12));
    await heldAt(id);
    expect(await task(id)).toMatchObject({ status: "running", steps: 0 });
    expect((await put("model", "claude-haiku-5-5", { paused: false })).status).toBe(200);
    expect((await waitForTasks(base, [id], 60_000)).get(id)?.status).toBe("succeeded");
  }, 120_000);

  it("in_flight=abort cancels a task waiting at a paused tool, and an agent's running task; a queued one waits for the lift", async () => {
    // A tool: the task waiting before it is cancelled, and the tool never runs for it.
    expect((await put("tool", "lookup_order", { paused: true })).status).toBe(200);
    const atTool = (await submitTask(base, order(13))).id;
    await heldAt(atTool);
    expect((await put("tool", "lookup_order", { paused: true, in_flight: "abort" })).status).toBe(200);
    expect((await waitForTasks(base, [atTool], 30_000)).get(atTool)?.status).toBe("cancelled");
    expect((await steps(atTool)).filter((s) => s.kind === "tool")).toEqual([]);

    // An agent: its running task (held at the tool, which stays paused with drain) is cancelled by the pause.
    expect((await put("tool", "lookup_order", { paused: true })).status).toBe(200);
    const running = (await submitTask(base, order(14))).id;
    await heldAt(running);
    expect((await put("agent", "order-router", { paused: true, in_flight: "abort" })).status).toBe(200);
    const queued = (await submitTask(base, order(15))).id;
    expect((await waitForTasks(base, [running], 30_000)).get(running)?.status).toBe("cancelled");
    expect(await task(queued)).toMatchObject({ status: "queued", attempts: 0 });

    expect((await put("tool", "lookup_order", { paused: false })).status).toBe(200);
    expect((await put("agent", "order-router", { paused: false })).status).toBe(200);
    expect((await waitForTasks(base, [queued], 60_000)).get(queued)?.status).toBe("succeeded");
  }, 120_000);
});
