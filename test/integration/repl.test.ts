/**
 * repl - `clawfleet repl`'s commands, typed into a real moleculer-repl session
 * (lines run through its own parser and dispatch) attached to an embedded node
 * started in this test: submit a task, follow it with `tasks` and `task`, list
 * agents, tools and limits; cancel, approve and flip switches.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { startRepl, type ReplSession } from "../../app/repl";
import { loadConfig, loadReplConfig } from "../../src/config";
import { ConfigError } from "../../src/errors";
import { uniqueId } from "../helpers/services";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "repl-prompts-"));
fs.writeFileSync(
  path.join(dir, "echo.md"),
  ["---", "name: echo", "description: Says it back.", "tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 256}", "default_tier: main", "---", "Answer in one line."].join("\n"),
);

let node: ClawfleetNode;
let repl: ReplSession;
let lines: string[] = [];

/** Types one line into the REPL and answers what Clawfleet's command printed. */
async function run(line: string): Promise<string> {
  lines = [];
  await repl.exec(line);
  return lines.join("\n");
}

beforeAll(async () => {
  node = await startNode(loadConfig({ PORT: "0", CLAWFLEET_DATA_DIR: "memory://", CLAWFLEET_NAMESPACE: uniqueId("repl"), CLAWFLEET_PROMPTS_DIR: dir, LOG_LEVEL: "error" }));
  const config = loadReplConfig({ TRANSPORTER: "nats://unused:4222", CLAWFLEET_RATE_LIMITS: '{"claude-haiku-5-5": {"rpm": 900, "tiers": {"classify": {"rpm": 100}}}}' });
  repl = await startRepl(config, { broker: node.broker, out: (l) => lines.push(l) });
}, 60_000);

afterAll(async () => {
  await repl?.close();
  await node?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("repl - Clawfleet's commands in moleculer-repl", () => {
  it("repl - submit queues a task; task shows it finished with its steps; tasks counts it", async () => {
    const submitted = await run(`submit echo '{"text": "hello there"}' --priority high`);
    const id = /^queued ([0-9a-f-]{36})$/.exec(submitted)?.[1] as string;
    expect(id, submitted).toBeDefined();
    await expect.poll(async () => (await node.broker.call<{ status: string }, { id: string }>("checkpoint.getTask", { id })).status, { timeout: 20_000 }).toBe("succeeded");

    const shown = await run(`task ${id}`);
    expect(shown).toContain(`${id}  echo  succeeded`);
    expect(shown).toMatch(/attempts 1, steps 1, tokens in \d+ \/ out \d+/);
    expect(shown).toContain('input  {"text":"hello there"}');
    expect(shown).toMatch(/\n {2}1 +llm +claude-haiku-5-5 end_turn/);
    const raw = JSON.parse(await run(`task ${id} --json`)) as { id: string; step_records: unknown[] };
    expect(raw.id).toBe(id);
    expect(raw.step_records).toHaveLength(1);

    expect(await run("tasks")).toMatch(/^tasks by status: queued 0, running 0, .*succeeded 1, failed 0/);
  });

  it("repl - submit with text that is not JSON sends it as a string; the same --key answers the same task", async () => {
    const first = await run("submit echo plain words --key k-1");
    expect(first).toContain('(input is not JSON: sent as the string "plain words")');
    const id = /queued ([0-9a-f-]{36})/.exec(first)?.[1] as string;
    expect(await run("submit echo other words --key k-1")).toContain(`${id} (the task this Idempotency-Key already names`);
  });

  it("repl - agents, tools and limits describe the cluster", async () => {
    expect(await run("agents")).toMatch(/^echo +[0-9a-f]{12} +main: claude-haiku-5-5 +tools -$/);
    expect(await run("tools")).toBe("echo (0 tools offered):");
    expect(await run("tools nobody")).toBe("no agent nobody");
    const limits = await run("limits");
    expect(limits).toContain("per 60000 ms window; callers wait up to 300000 ms");
    expect(limits).toContain('claude-haiku-5-5: {"rpm":900}');
    expect(limits).toContain('tier classify: {"rpm":100}');
  });

  it("repl - approve lists the tasks waiting for a decision and decides one as repl:<node>, once", async () => {
    expect(await run("approve")).toBe("no task is waiting for a decision");
    // Parked by hand as a planner parks one: claimed, its model turn checkpointed, then parked on the turn's call.
    const id = "5d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    await node.broker.call("checkpoint.createTask", { task: { id, agent: "echo", input: "pay", priority: "normal", metadata: {}, prompt_version: "pv" } });
    const { fence } = await node.broker.call<{ fence: number }, { id: string; owner: string }>("checkpoint.claimTask", { id, owner: "test" });
    const usage = { input_tokens: 1, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: 0 };
    const content = [{ type: "tool_use", id: "toolu_1", name: "wire_money", input: { amount: 5 } }];
    await node.broker.call("checkpoint.appendStep", { taskId: id, fence, step: { kind: "llm", step: 1, data: { model: "m", tier: "main", stop_reason: "tool_use", usage, content, duration_ms: 1 } } });
    await node.broker.call("checkpoint.awaitApproval", { taskId: id, fence, request: { step: 2, tool_use_id: "toolu_1", tool: "wire_money", input: { amount: 5 }, timeout_seconds: 600 } });
    expect(await run("approve")).toMatch(new RegExp(`^waiting for a decision \\(1\\):\n {2}${id} +echo +step 2 +wire_money \\{"amount":5\\} +until `));
    expect(await run(`approve ${id} --reject --reason "not today"`)).toBe(`${id}: rejected; the task is queued again`);
    expect(await run(`approve ${id}`)).toMatch(new RegExp(`^error: approval_decided: .*reject by repl:${node.broker.nodeID}`));
    expect(await run("approve 00000000-0000-4000-8000-000000000000")).toMatch(/^error: task_not_found: /);
  });

  it("repl - cancel ends a queued task as repl:<node>; a finished or unknown task is answered with its error", async () => {
    // Stored without a wake-up, so no planner takes it before the cancel does.
    const id = "0b7c6f7e-6a0e-4d8e-9d55-0a3f2b1c9e77";
    await node.broker.call("checkpoint.createTask", { task: { id, agent: "echo", input: "wait", priority: "normal", metadata: {}, prompt_version: "pv" } });
    expect(await run(`cancel ${id} --reason "not needed"`)).toBe(`${id} cancelled`);
    const task = await node.broker.call<{ status: string; cancelled_by?: string; cancel_reason?: string }, { id: string }>("checkpoint.getTask", { id });
    expect(task).toMatchObject({ status: "cancelled", cancelled_by: `repl:${node.broker.nodeID}`, cancel_reason: "not needed" });
    expect(await run(`cancel ${id}`)).toBe(`${id} cancelled`);
    const done = /queued ([0-9a-f-]{36})/.exec(await run("submit echo finish-me"))?.[1] as string;
    await expect.poll(async () => (await node.broker.call<{ status: string }, { id: string }>("checkpoint.getTask", { id: done })).status, { timeout: 20_000 }).toBe("succeeded");
    expect(await run(`cancel ${done}`)).toMatch(/^error: task_finished: task [0-9a-f-]{36} already succeeded/);
    expect(await run("cancel 00000000-0000-4000-8000-000000000000")).toMatch(/^error: task_not_found: /);
  });

  it("repl - canary starts a canary from an agent file and aborts it, as repl:<node>", async () => {
    const file = path.join(dir, "echo-canary.txt");
    fs.writeFileSync(file, fs.readFileSync(path.join(dir, "echo.md"), "utf8").replace("Answer in one line.", "Answer in one short line."));
    expect(await run(`canary start echo ${file} --steps 10,100 --min-tasks 5`)).toMatch(/^echo: canary [0-9a-f]{12} at 10% of new tasks; stable [0-9a-f]{12}$/);
    const view = await node.broker.call<{ canary: { state: string; steps: number[]; min_tasks_per_step: number } | null }, { name: string }>("intake.getAgent", { name: "echo" });
    expect(view.canary).toMatchObject({ state: "running", steps: [10, 100], min_tasks_per_step: 5 });
    expect(await run("canary abort echo")).toMatch(/^echo: canary aborted; stable [0-9a-f]{12}$/);
    expect(await run("canary abort echo")).toMatch(/^error: canary_not_running: /);
    expect(await run("canary promote echo")).toMatch(/^usage: canary /);
  });

  it("repl - switches pauses and lifts as repl:<node>, and lists the paused ones and the latest changes", async () => {
    expect(await run("switches")).toBe("no switch is paused\nlatest changes (0):");
    expect(await run("switches pause tool lookup_order --abort")).toBe("tool lookup_order: paused (abort), change 1 of this switch");
    expect(await run("switches")).toMatch(new RegExp(`^paused \\(1\\):\n {2}tool +lookup_order +abort +by repl:${node.broker.nodeID} +since `));
    expect(await run("switches lift tool lookup_order")).toBe("tool lookup_order: lifted, change 2 of this switch");
    const listed = (await run("switches")).split("\n");
    expect(listed.slice(0, 2)).toEqual(["no switch is paused", "latest changes (2):"]);
    expect(listed[2]).toMatch(/tool lookup_order +lifted +by repl:/);
    expect(listed[3]).toMatch(/tool lookup_order +paused \(abort\) +by repl:/);
    expect(await run("switches pause planet mars")).toMatch(/^error: not_found: no switch kind "planet"/);
    expect(await run("switches pause agent nobody")).toMatch(/^error: agent_not_found: /);
    expect(await run("switches stop tool x")).toMatch(/^usage: switches /);
  });

  it("repl - an unknown task and a failing call are answered, not thrown", async () => {
    expect(await run("task 00000000-0000-4000-8000-000000000000")).toBe("no task 00000000-0000-4000-8000-000000000000");
    expect(await run("submit nobody '{}'")).toMatch(/^error: agent_not_found: /);
  });

  it("repl - clawfleet repl needs the cluster's transporter", () => {
    expect(() => loadReplConfig({})).toThrow(ConfigError);
    expect(() => loadReplConfig({})).toThrow(/TRANSPORTER: clawfleet repl joins a running cluster/);
    expect(loadReplConfig({ TRANSPORTER: "nats://h:4222", CLAWFLEET_NAMESPACE: "prod" })).toMatchObject({ transporter: "nats://h:4222", namespace: "prod", logLevel: "warn" });
  });
});
