/**
 * repl - `clawfleet repl`'s commands, typed into a real moleculer-repl session
 * (lines run through its own parser and dispatch) attached to an embedded node
 * started in this test: submit a task, follow it with `tasks` and `task`, list
 * agents, tools and limits; the operations this version lacks say so.
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
    expect(limits).toContain("per 60000 ms window; callers wait up to 2000 ms");
    expect(limits).toContain('claude-haiku-5-5: {"rpm":900}');
    expect(limits).toContain('tier classify: {"rpm":100}');
  });

  it("repl - cancel, approve and switches answer that this version has none, and change nothing", async () => {
    expect(await run("cancel 00000000-0000-4000-8000-000000000000")).toBe("cancel: not available in this version of Clawfleet; nothing was changed");
    expect(await run("approve 00000000-0000-4000-8000-000000000000")).toBe("approve: not available in this version of Clawfleet; nothing was changed");
    expect(await run("switches")).toBe("switches: not available in this version of Clawfleet; nothing was changed");
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
