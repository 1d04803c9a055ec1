/**
 * agent versions - prompt versions as data (migration 008):
 *
 * - the store (PGlite always, real Postgres when reachable): versions stored once, tasks counted per
 *   version, the start-up rule (the first start creates the rollout row, a new file version is a deploy
 *   that wins and aborts a running canary), canaries started and aborted, and decisions that apply only
 *   at the revision they were made on;
 * - the REST routes on an embedded node serving the order-router example: the errors (404, 409, 422), a
 *   canary that takes every new task and triples its inventory checks on the sim, and its abort;
 * - pinning across a deploy: a task submitted under version A and interrupted, resumed by a node whose
 *   agent file is B, still runs A; a task pinned to a version nobody has fails with a typed error.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { startNode, type ClawfleetNode } from "../../app/node";
import { clawfleetCommands } from "../../app/replCommands";
import { parseAgentFile } from "../../src/agent/definition";
import { loadConfig } from "../../src/config";
import type { AgentView, CanaryEventPayload, StepRecord, TaskRecord } from "../../src/contracts";
import { AgentNotFoundError, CanaryNotRunningError, CanaryRunningError, ValidationError } from "../../src/errors";
import type { SubmitResult } from "../../src/queue/intake";
import { defineTool } from "../../src/tools/define";
import { EXAMPLES_ENV, ORDER_ROUTER_PROMPTS } from "../../testkit/examples";
import { uniqueId } from "../helpers/services";
import { storeBackends, type OpenedBackend } from "../helpers/storeBackends";

// ---------------------------------------------------------------------------------------------------------------
// The store

function storeSuite(name: string, open: () => Promise<OpenedBackend>): void {
  describe(`agent versions store - ${name}`, () => {
    let opened: Awaited<ReturnType<typeof open>>;
    beforeAll(async () => {
      opened = await open();
    }, 60_000);
    afterAll(async () => {
      await opened?.dispose();
    });

    const agentName = () => uniqueId("agent").toLowerCase().replace(/[^a-z0-9_-]/g, "-");
    const task = (agent: string, version: string) =>
      opened.store.createTask({ id: randomUUID(), agent, input: "x", priority: "normal", metadata: {}, prompt_version: version });

    it("versions - stored once (the first origin stays), read back with their text, listed oldest first with their tasks", async () => {
      const agent = agentName();
      const s = opened.store;
      expect(await s.putAgentVersion({ agent, version: "aaaaaaaaaaaa", source: "text A", origin: "file" })).toBe(true);
      expect(await s.putAgentVersion({ agent, version: "aaaaaaaaaaaa", source: "text A", origin: "canary" })).toBe(false);
      expect(await s.putAgentVersion({ agent, version: "bbbbbbbbbbbb", source: "text B", origin: "canary" })).toBe(true);
      expect(await s.getAgentVersion(agent, "aaaaaaaaaaaa")).toMatchObject({ agent, version: "aaaaaaaaaaaa", source: "text A", origin: "file" });
      expect(await s.getAgentVersion(agent, "cccccccccccc")).toBeNull();
      expect(await s.getAgentVersion("another-agent", "aaaaaaaaaaaa")).toBeNull();
      await Promise.all([task(agent, "aaaaaaaaaaaa"), task(agent, "aaaaaaaaaaaa"), task(agent, "bbbbbbbbbbbb"), task("another-agent", "aaaaaaaaaaaa")]);
      const listed = await s.listAgentVersions(agent);
      expect(listed.map((v) => [v.version, v.origin, v.tasks])).toEqual([
        ["aaaaaaaaaaaa", "file", 2],
        ["bbbbbbbbbbbb", "canary", 1],
      ]);
      expect(Date.parse(listed[0]?.first_seen ?? "")).toBeLessThanOrEqual(Date.parse(listed[1]?.first_seen ?? ""));
    });

    it("start-up - the first start creates the rollout row with the files' version stable; the same version again changes nothing", async () => {
      const agent = agentName();
      const first = await opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1");
      expect(first).toMatchObject({ deployed: false, aborted_canary: null });
      expect(first.rollout).toMatchObject({ agent, stable_version: "v1v1v1v1v1v1", file_version: "v1v1v1v1v1v1", canary_version: null, canary_weight: 0, canary_state: "none", steps: [5, 25, 50, 100], step_index: 0, min_tasks_per_step: 100 });
      const again = await opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1");
      expect(again).toMatchObject({ deployed: false, aborted_canary: null });
      expect(again.rollout.revision).toBe(first.rollout.revision);
      expect(await opened.store.getAgentVersion(agent, "v1v1v1v1v1v1")).toMatchObject({ origin: "file", source: "file v1" });
      expect((await opened.store.listRollouts()).map((r) => r.agent)).toContain(agent);
    });

    it("start-up - many nodes starting at once create one row", async () => {
      const agent = agentName();
      const all = await Promise.all(Array.from({ length: 6 }, () => opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1")));
      expect(all.every((r) => !r.deployed)).toBe(true);
      expect((await opened.store.listRollouts()).filter((r) => r.agent === agent)).toHaveLength(1);
    });

    it("start-up - a new file version is a deploy: it becomes stable and the running canary is aborted", async () => {
      const agent = agentName();
      await opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1");
      const started = await opened.store.startCanary(agent, "c1c1c1c1c1c1", "canary c1", [5, 25, 100], 50, "key-1");
      const deployed = await opened.store.syncFileVersion(agent, "v2v2v2v2v2v2", "file v2");
      expect(deployed).toMatchObject({ deployed: true, aborted_canary: "c1c1c1c1c1c1" });
      expect(deployed.rollout).toMatchObject({ stable_version: "v2v2v2v2v2v2", file_version: "v2v2v2v2v2v2", canary_state: "aborted", canary_weight: 0 });
      expect(deployed.rollout.evidence).toMatchObject({ started_by: "key-1", aborted_by: "deploy" });
      expect(deployed.rollout.decided_at).not.toBeNull();
      expect(deployed.rollout.revision).toBeGreaterThan(started.revision);
      // A deploy with no canary running only moves the stable version.
      const next = await opened.store.syncFileVersion(agent, "v3v3v3v3v3v3", "file v3");
      expect(next).toMatchObject({ deployed: true, aborted_canary: null });
      expect(next.rollout).toMatchObject({ stable_version: "v3v3v3v3v3v3", canary_state: "aborted" });
    });

    it("start-up - files behind a promoted canary (unchanged since) leave the canary stable", async () => {
      const agent = agentName();
      await opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1");
      const started = await opened.store.startCanary(agent, "c1c1c1c1c1c1", "canary c1", [100], 1, "key-1");
      const promoted = await opened.store.decideCanary(agent, started.revision, { canary_state: "promoted" });
      expect(promoted.rollout).toMatchObject({ stable_version: "c1c1c1c1c1c1", canary_state: "promoted", canary_weight: 0 });
      const restart = await opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1");
      expect(restart.deployed).toBe(false);
      expect(restart.rollout.stable_version).toBe("c1c1c1c1c1c1");
    });

    it("canary - starts at its first step and stores its version; a second one is canary_running, the stable version a validation error", async () => {
      const agent = agentName();
      await opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1");
      await expect(opened.store.startCanary(agent, "v1v1v1v1v1v1", "file v1", [5, 100], 10, "key-1")).rejects.toBeInstanceOf(ValidationError);
      const r = await opened.store.startCanary(agent, "c1c1c1c1c1c1", "canary c1", [10, 40, 100], 20, "key-1");
      expect(r).toMatchObject({ canary_version: "c1c1c1c1c1c1", canary_weight: 10, steps: [10, 40, 100], step_index: 0, min_tasks_per_step: 20, canary_state: "running", decided_at: null, evidence: { started_by: "key-1" } });
      expect(r.canary_started_at).not.toBeNull();
      expect(r.step_started_at).not.toBeNull();
      expect(await opened.store.getAgentVersion(agent, "c1c1c1c1c1c1")).toMatchObject({ origin: "canary", source: "canary c1" });
      const second = opened.store.startCanary(agent, "c2c2c2c2c2c2", "canary c2", [5], 10, "key-2");
      await expect(second).rejects.toBeInstanceOf(CanaryRunningError);
      await expect(second).rejects.toMatchObject({ code: 409, type: "canary_running" });
      // The refused canary left nothing behind.
      expect(await opened.store.getAgentVersion(agent, "c2c2c2c2c2c2")).toBeNull();
      await expect(opened.store.startCanary(agentName(), "c1c1c1c1c1c1", "x", [5], 10, "key-1")).rejects.toBeInstanceOf(AgentNotFoundError);
    });

    it("canary - an abort sets the weight to 0 at once; a second abort is canary_not_running; a new canary may start", async () => {
      const agent = agentName();
      await opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1");
      const started = await opened.store.startCanary(agent, "c1c1c1c1c1c1", "canary c1", [50, 100], 10, "key-1");
      const aborted = await opened.store.abortCanary(agent, "key-2");
      expect(aborted).toMatchObject({ canary_state: "aborted", canary_weight: 0, stable_version: "v1v1v1v1v1v1", evidence: { started_by: "key-1", aborted_by: "key-2" } });
      expect(aborted.revision).toBe(started.revision + 1);
      await expect(opened.store.abortCanary(agent, "key-2")).rejects.toBeInstanceOf(CanaryNotRunningError);
      await expect(opened.store.abortCanary(agentName(), "key-2")).rejects.toBeInstanceOf(AgentNotFoundError);
      const again = await opened.store.startCanary(agent, "c1c1c1c1c1c1", "canary c1", [5], 10, "key-3");
      expect(again).toMatchObject({ canary_state: "running", canary_weight: 5, decided_at: null, evidence: { started_by: "key-3" } });
    });

    it("decisions - apply only at the revision they were made on; a new step takes its share from the steps; evidence is merged", async () => {
      const agent = agentName();
      await opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1");
      const r0 = await opened.store.startCanary(agent, "c1c1c1c1c1c1", "canary c1", [5, 25, 50, 100], 10, "key-1");

      const step = await opened.store.decideCanary(agent, r0.revision, { step_index: 1, evidence: { judge: { look: 1 } } });
      expect(step.applied).toBe(true);
      expect(step.rollout).toMatchObject({ canary_weight: 25, step_index: 1, canary_state: "running", evidence: { started_by: "key-1", judge: { look: 1 } } });
      expect(Date.parse(step.rollout?.step_started_at ?? "")).toBeGreaterThanOrEqual(Date.parse(r0.step_started_at ?? ""));

      // A second judge that read revision r0 is too late: nothing changes.
      const stale = await opened.store.decideCanary(agent, r0.revision, { canary_state: "rolled_back" });
      expect(stale.applied).toBe(false);
      expect(stale.rollout).toEqual(step.rollout);

      // Two decisions racing on the same revision: exactly one applies.
      const rev = step.rollout?.revision ?? -1;
      const raced = await Promise.all([
        opened.store.decideCanary(agent, rev, { step_index: 2 }),
        opened.store.decideCanary(agent, rev, { canary_state: "rolled_back", evidence: { judge: { look: 2 } } }),
      ]);
      expect(raced.filter((d) => d.applied)).toHaveLength(1);

      const unknown = await opened.store.decideCanary(agentName(), 0, { canary_state: "promoted" });
      expect(unknown).toEqual({ applied: false, rollout: null });
    });

    it("decisions - a rollback sets the weight to 0 and stamps the decision; a promotion makes the canary stable", async () => {
      const agent = agentName();
      await opened.store.syncFileVersion(agent, "v1v1v1v1v1v1", "file v1");
      const r0 = await opened.store.startCanary(agent, "c1c1c1c1c1c1", "canary c1", [5, 100], 10, "key-1");
      const back = await opened.store.decideCanary(agent, r0.revision, { canary_state: "rolled_back", evidence: { judge: { harmful: ["tool_calls"] } } });
      expect(back.rollout).toMatchObject({ canary_state: "rolled_back", canary_weight: 0, stable_version: "v1v1v1v1v1v1" });
      expect(back.rollout?.decided_at).not.toBeNull();

      const r1 = await opened.store.startCanary(agent, "c2c2c2c2c2c2", "canary c2", [5, 100], 10, "key-1");
      const up = await opened.store.decideCanary(agent, r1.revision, { step_index: 1 });
      expect(up.rollout).toMatchObject({ canary_weight: 100, canary_state: "running" });
      const done = await opened.store.decideCanary(agent, up.rollout?.revision ?? -1, { canary_state: "promoted" });
      expect(done.rollout).toMatchObject({ canary_state: "promoted", stable_version: "c2c2c2c2c2c2", file_version: "v1v1v1v1v1v1", canary_weight: 0 });
    });
  });
}

for (const backend of storeBackends({ max: 4 })) {
  describe.skipIf(!backend.ready)(backend.name, () => storeSuite(backend.name, () => backend.open()));
}

// ---------------------------------------------------------------------------------------------------------------
// The REST routes

interface Answer<T = Record<string, unknown>> {
  status: number;
  json: T & { error?: { type: string; message: string; details?: Record<string, unknown> } };
}

async function call<T = Record<string, unknown>>(base: string, method: string, route: string, body?: unknown): Promise<Answer<T>> {
  const r = await fetch(`${base}${route}`, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await r.text();
  return { status: r.status, json: (text === "" ? {} : JSON.parse(text)) as Answer<T>["json"] };
}

/** Watches the control events a node's broker delivers. */
function watchCanaryEvents(node: ClawfleetNode): Array<{ name: string; payload: CanaryEventPayload }> {
  const seen: Array<{ name: string; payload: CanaryEventPayload }> = [];
  node.broker.createService({
    name: `canary-watch-${randomUUID().slice(0, 8)}`,
    events: {
      "clawfleet.control.canary_*"(ctx: { eventName: string; params: CanaryEventPayload }) {
        seen.push({ name: ctx.eventName, payload: ctx.params });
      },
    },
  });
  return seen;
}

describe("agent versions - the REST routes, on the order-router example", () => {
  let node: ClawfleetNode;
  let base: string;
  let events: ReturnType<typeof watchCanaryEvents>;
  const fileText = fs.readFileSync(path.join(ORDER_ROUTER_PROMPTS, "order-router.md"), "utf8");
  const fileVersion = parseAgentFile(fileText, "order-router.md").promptVersion;
  const canaryText = `${fileText.trimEnd()}\n\nCheck inventory 3 times before you choose a warehouse.\n`;
  const canaryVersion = parseAgentFile(canaryText, "canary").promptVersion;

  beforeAll(async () => {
    node = await startNode(loadConfig({ ...EXAMPLES_ENV, PORT: "0", CLAWFLEET_DATA_DIR: "memory://", CLAWFLEET_NAMESPACE: uniqueId("versions"), LOG_LEVEL: "error" }));
    base = `http://127.0.0.1:${node.port}`;
    events = watchCanaryEvents(node);
  }, 60_000);

  afterAll(async () => {
    await node?.stop();
  });

  async function routedTask(orderId: string): Promise<{ task: TaskRecord; steps: StepRecord[] }> {
    const r = await call<{ id: string }>(base, "POST", "/v1/tasks", { agent: "order-router", input: { order_id: orderId } });
    expect(r.status).toBe(202);
    await expect.poll(async () => (await call<{ status: string }>(base, "GET", `/v1/tasks/${r.json.id}`)).json.status, { timeout: 30_000 }).toBe("succeeded");
    const task = (await node.broker.call<TaskRecord | null, { id: string }>("checkpoint.getTask", { id: r.json.id })) as TaskRecord;
    const steps = await node.broker.call<StepRecord[], { taskId: string }>("checkpoint.listSteps", { taskId: r.json.id });
    return { task, steps };
  }
  const inventoryChecks = (steps: StepRecord[]) => steps.filter((s) => s.kind === "tool" && s.data.tool === "check_inventory").length;

  it("api - GET /v1/agents lists each agent with its file version stable, its versions and no canary", async () => {
    const r = await call<AgentView[]>(base, "GET", "/v1/agents");
    expect(r.status).toBe(200);
    const agent = r.json.find((a) => a.name === "order-router");
    expect(agent).toMatchObject({ name: "order-router", prompt_version: fileVersion, file_version: fileVersion, stable_version: fileVersion, canary: null });
    expect(agent?.versions.map((v) => [v.version, v.origin])).toEqual([[fileVersion, "file"]]);
    expect((await call(base, "GET", "/v1/agents/order-router")).json).toMatchObject({ name: "order-router", stable_version: fileVersion });
  });

  it.each([
    ["GET", "/v1/agents/no-such-agent", undefined],
    ["POST", "/v1/agents/no-such-agent/canary", { prompt: "---\nname: no-such-agent\n---\n" }],
    ["DELETE", "/v1/agents/no-such-agent/canary", undefined],
    ["GET", "/v1/agents/Not%20A%20Name", undefined],
  ])("api - %s %s answers 404 agent_not_found", async (method, route, body) => {
    const r = await call(base, method, route, body);
    expect(r.status).toBe(404);
    expect(r.json.error?.type).toBe("agent_not_found");
  });

  it.each([
    ["a body that is not an object", [1, 2], "body", /JSON object/],
    ["no prompt", {}, "prompt", /prompt/],
    ["a prompt without front matter", { prompt: "Route orders, and check inventory 3 times." }, "prompt", /starts with YAML front matter/],
    ["a prompt whose front matter breaks the schema", { prompt: fileText.replace("default_tier: reason", "default_tier: 7") }, "prompt", /default_tier/],
    ["a prompt of another agent", { prompt: fileText.replace("name: order-router", "name: order-sorter") }, "prompt", /named "order-sorter"/],
    ["the stable version itself", { prompt: fileText }, "prompt", /already agent order-router's stable version/],
    ["steps that do not rise", { prompt: canaryText, steps: [50, 25] }, "steps", /rise/],
    ["a step over 100", { prompt: canaryText, steps: [5, 250] }, "steps.1", /100/],
    ["min_tasks_per_step of 0", { prompt: canaryText, min_tasks_per_step: 0 }, "min_tasks_per_step", /./],
    ["an unknown field", { prompt: canaryText, weight: 5 }, undefined, /weight/],
  ])("api - POST a canary with %s answers 422 naming the problem", async (_what, body, field, message) => {
    const r = await call(base, "POST", "/v1/agents/order-router/canary", body);
    expect(r.status).toBe(422);
    expect(r.json.error?.type).toBe("validation_error");
    if (field !== undefined) expect(r.json.error?.details?.field).toBe(field);
    expect(r.json.error?.message).toMatch(message);
  });

  it("api - DELETE without a running canary answers 409 canary_not_running", async () => {
    const r = await call(base, "DELETE", "/v1/agents/order-router/canary");
    expect(r.status).toBe(409);
    expect(r.json.error?.type).toBe("canary_not_running");
  });

  it("api - a canary at 100% takes every new task, which checks inventory three times as often; a second canary is 409; the abort hands tasks back to stable", async () => {
    const stable = await routedTask("ORD-1042");
    expect(stable.task.prompt_version).toBe(fileVersion);

    const started = await call<AgentView>(base, "POST", "/v1/agents/order-router/canary", { prompt: canaryText, steps: [100], min_tasks_per_step: 5 });
    expect(started.status).toBe(201);
    expect(started.json).toMatchObject({ stable_version: fileVersion, canary: { version: canaryVersion, weight: 100, step: 1, steps: [100], min_tasks_per_step: 5, state: "running", evidence: { started_by: "anonymous" } } });
    await expect.poll(() => events.map((e) => e.name)).toContain("clawfleet.control.canary_started");
    expect(events.find((e) => e.name === "clawfleet.control.canary_started")?.payload).toMatchObject({ agent: "order-router", version: canaryVersion, stable_version: fileVersion, weight: 100, by: "anonymous" });

    const second = await call(base, "POST", "/v1/agents/order-router/canary", { prompt: `${canaryText}\nBe brief.\n` });
    expect(second.status).toBe(409);
    expect(second.json.error?.type).toBe("canary_running");

    const canary = await routedTask("ORD-1042");
    expect(canary.task.prompt_version).toBe(canaryVersion);

    // The REPL's `agents` shows the canary and both versions with their tasks.
    const printed: string[] = [];
    const agentsCommand = clawfleetCommands(undefined, (line) => printed.push(line)).find((c) => c.command === "agents");
    await agentsCommand?.action(node.broker, { args: [], opts: {} });
    expect(printed[0]).toMatch(new RegExp(`^order-router +${fileVersion} +reason: claude-sonnet-5-5 +tools lookup_order, list_warehouses, check_inventory, route_order$`));
    expect(printed[1]).toMatch(new RegExp(`^  canary ${canaryVersion} running at 100%, step 1 of 1 \\(100 %; 5 tasks a step\\), started \\S+$`));
    expect(printed.slice(-2)).toEqual([
      expect.stringMatching(new RegExp(`^ {4}${fileVersion} +file +1 task +first seen \\S+ +stable, files$`)),
      expect.stringMatching(new RegExp(`^ {4}${canaryVersion} +canary +1 task +first seen \\S+ +canary$`)),
    ]);
    expect(inventoryChecks(stable.steps)).toBeGreaterThan(0);
    expect(inventoryChecks(canary.steps)).toBe(3 * inventoryChecks(stable.steps));
    expect(canary.task.result).toMatchObject({ routed: stable.task.result && (stable.task.result as { routed: boolean }).routed });

    const aborted = await call<AgentView>(base, "DELETE", "/v1/agents/order-router/canary");
    expect(aborted.status).toBe(200);
    expect(aborted.json.canary).toMatchObject({ version: canaryVersion, state: "aborted", weight: 0, evidence: { started_by: "anonymous", aborted_by: "anonymous" } });
    await expect.poll(() => events.map((e) => e.name)).toContain("clawfleet.control.canary_aborted");
    const after = await routedTask("ORD-1042");
    expect(after.task.prompt_version).toBe(fileVersion);

    const view = await call<AgentView>(base, "GET", "/v1/agents/order-router");
    expect(view.json.versions.map((v) => [v.version, v.origin, v.tasks])).toEqual([
      [fileVersion, "file", 2],
      [canaryVersion, "canary", 1],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Pinning across a deploy

const clock = defineTool({ name: "utc_now", description: "The current time, UTC, ISO 8601.", input: z.object({}), run: async () => ({ now: new Date().toISOString() }) });

const agentFile = (model: string, prompt: string) =>
  ["---", "name: pinned", "description: Says what time it is.", "tools: [utc_now]", "tiers:", `  main: {model: ${model}, max_tokens: 256}`, "default_tier: main", "---", prompt, ""].join("\n");

describe("agent versions - a task runs the version it was submitted with", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-versions-"));
  const prompts = path.join(dir, "prompts");
  const data = path.join(dir, "data");
  const namespace = uniqueId("pinned");
  const textA = agentFile("claude-haiku-5-5", "Say what time it is, using utc_now.");
  const textB = agentFile("claude-sonnet-5-5", "Tell the time: call utc_now, then answer in one sentence.");
  const versionA = parseAgentFile(textA, "A").promptVersion;
  const versionB = parseAgentFile(textB, "B").promptVersion;
  let node: ClawfleetNode | undefined;

  const start = (env: Record<string, string> = {}) =>
    startNode(
      loadConfig({
        PORT: "0",
        CLAWFLEET_DATA_DIR: data,
        CLAWFLEET_PROMPTS_DIR: prompts,
        CLAWFLEET_USER_SERVICES: "none",
        CLAWFLEET_NAMESPACE: namespace,
        CLAWFLEET_REAPER_INTERVAL_MS: "200",
        CLAWFLEET_REAPER_QUEUED_AFTER_MS: "200",
        LOG_LEVEL: "error",
        ...env,
      }),
      { tools: [clock] },
    );
  const getTask = async (id: string) => (await node?.broker.call<TaskRecord | null, { id: string }>("checkpoint.getTask", { id })) ?? null;
  const stepsOf = async (id: string) => (await node?.broker.call<StepRecord[], { taskId: string }>("checkpoint.listSteps", { taskId: id })) ?? [];
  const modelsOf = (steps: StepRecord[]) => steps.flatMap((s) => (s.kind === "llm" ? [s.data.model] : []));

  beforeAll(() => {
    fs.mkdirSync(prompts);
    fs.writeFileSync(path.join(prompts, "pinned.md"), textA);
  });

  afterAll(async () => {
    await node?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("pinning - submitted under A and interrupted, resumed by a node whose agent file is B, the task still runs A; new tasks run B; the deploy aborted the canary", async () => {
    // Node 1, agent file A; its model answers slowly, so the task is mid-call when the node stops.
    node = await start({ CLAWFLEET_SIM_LATENCY_MS: "1500" });
    const submitted = await node.broker.call<SubmitResult, { body: unknown }>("intake.submit", { body: { agent: "pinned", input: "What time is it?" } });
    expect(submitted.prompt_version).toBe(versionA);
    await expect.poll(async () => (await getTask(submitted.id))?.status, { timeout: 20_000, interval: 20 }).toBe("running");
    // A canary that the deploy below will abort (at 5%, after the submit: it takes none of these tasks).
    const canaryText = agentFile("claude-haiku-5-5", "Say what time it is, using utc_now, in French.");
    await node.broker.call("intake.startCanary", { name: "pinned", body: { prompt: canaryText }, by: "test" });
    // Stopping hands the task back at its step boundary: the first model turn (A's model) is checkpointed.
    await node.stop();
    node = undefined;

    // The deploy: the agent file is B now.
    fs.writeFileSync(path.join(prompts, "pinned.md"), textB);
    node = await start();
    const running = node;
    await expect.poll(async () => (await getTask(submitted.id))?.status, { timeout: 30_000 }).toBe("succeeded");
    const resumed = (await getTask(submitted.id)) as TaskRecord;
    expect(resumed.prompt_version).toBe(versionA);
    expect(resumed.attempts).toBeGreaterThanOrEqual(1);
    const steps = await stepsOf(submitted.id);
    expect(steps.map((s) => (s.kind === "llm" ? "llm" : `tool:${s.data.tool}`))).toEqual(["llm", "tool:utc_now", "llm"]);
    // Every model turn, the one before the deploy and the one after it, ran A's tier.
    expect(modelsOf(steps)).toEqual(["claude-haiku-5-5", "claude-haiku-5-5"]);

    const fresh = await running.broker.call<SubmitResult, { body: unknown }>("intake.submit", { body: { agent: "pinned", input: "And now?" } });
    expect(fresh.prompt_version).toBe(versionB);
    await expect.poll(async () => (await getTask(fresh.id))?.status, { timeout: 30_000 }).toBe("succeeded");
    expect(modelsOf(await stepsOf(fresh.id))).toEqual(["claude-sonnet-5-5", "claude-sonnet-5-5"]);

    const view = await running.broker.call<AgentView, { name: string }>("intake.getAgent", { name: "pinned" });
    expect(view).toMatchObject({ file_version: versionB, stable_version: versionB, canary: { state: "aborted", weight: 0, evidence: { aborted_by: "deploy" } } });
    expect(view.versions.map((v) => [v.version, v.origin])).toEqual([
      [versionA, "file"],
      [parseAgentFile(canaryText, "canary").promptVersion, "canary"],
      [versionB, "file"],
    ]);
  }, 120_000);

  it("pinning - a task pinned to a version neither the files nor the store hold fails with agent_version_not_found, once", async () => {
    const running = node as ClawfleetNode;
    const id = randomUUID();
    await running.broker.call("checkpoint.createTask", { task: { id, agent: "pinned", input: "x", priority: "normal", metadata: {}, prompt_version: "0123456789ab" } });
    // No wake-up was published: the reaper finds the queued task and wakes a planner for it.
    await expect.poll(async () => (await getTask(id))?.status, { timeout: 30_000 }).toBe("failed");
    const failed = (await getTask(id)) as TaskRecord;
    expect(failed.error?.type).toBe("agent_version_not_found");
    expect(failed.error?.message).toContain("0123456789ab");
    expect(failed.attempts).toBe(1);
    expect(await stepsOf(id)).toEqual([]);
  }, 60_000);
});
