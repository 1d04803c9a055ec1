/**
 * The MCP tool source against real stdio servers: the fixture server under
 * test/fixtures/mcp, started as a child process, killed for real.
 */
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseAgentFile, type AgentDefinition } from "../../src/agent/definition";
import { isRetryable } from "../../src/errors";
import { McpTimeoutError, McpToolError, McpToolSource, McpUnavailableError, type McpToolSourceOptions } from "../../src/tools/mcp";
import type { ResolvedTool } from "../../src/tools/source";
import type { ToolContext } from "../../src/tools/tool";
import { rejection } from "../helpers/rejection";

const FIXTURES = path.join(__dirname, "..", "fixtures", "mcp");

interface LogLine {
  level: "info" | "warn";
  obj: Record<string, unknown>;
  msg: string;
}

function agent(servers: string[], name = "stock-desk"): AgentDefinition {
  const md = ["---", `name: ${name}`, "tiers: {default: {model: claude-haiku-5-5, max_tokens: 512}}", "default_tier: default", "mcp_servers:", ...servers, "---", "Answers.", ""];
  return parseAgentFile(md.join("\n"), `${name}.md`, FIXTURES);
}

const FX = "  fx: {command: node, args: [./server.mjs]}";

let step = 0;
function ctx(signal: AbortSignal = AbortSignal.timeout(5_000)): ToolContext {
  step += 1;
  return { taskId: "task-1", step, agent: "stock-desk", idempotencyKey: `task-1:${step}`, signal };
}

const sources: McpToolSource[] = [];
function source(over: Partial<McpToolSourceOptions> = {}): { src: McpToolSource; log: LogLine[] } {
  const log: LogLine[] = [];
  const src = new McpToolSource({
    logger: { info: (obj, msg) => log.push({ level: "info", obj, msg }), warn: (obj, msg) => log.push({ level: "warn", obj, msg }) },
    connectTimeoutMs: 5_000,
    ...over,
  });
  sources.push(src);
  return { src, log };
}

afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
});

async function tool(src: McpToolSource, a: AgentDefinition, name: string): Promise<ResolvedTool> {
  const t = await src.resolve(a, name);
  if (!t) throw new Error(`${name} did not resolve`);
  return t;
}

async function pidOf(src: McpToolSource, a: AgentDefinition, server = "fx"): Promise<number> {
  const out = (await (await tool(src, a, `${server}__whoami`)).invoke({}, ctx())) as { pid: number };
  return out.pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("mcp stdio", () => {
  it("mcp stdio - a server's tools are offered as <server>__<tool>, with their schemas; names the Messages API refuses are left out", async () => {
    const { src, log } = source();
    const tools = await src.list(agent([FX]));
    expect(tools.map((t) => t.name)).toEqual(["fx__echo", "fx__whoami", "fx__env", "fx__meta", "fx__fail", "fx__crash", "fx__hang", "fx__mixed"]);
    const echo = tools[0];
    expect(echo).toMatchObject({
      description: "Says the text back.",
      inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
      sideEffect: false,
      target: "mcp:fx",
    });
    expect(tools.find((t) => t.name === "fx__fail")?.sideEffect).toBe(true);
    expect(log.some((l) => l.level === "warn" && l.obj.event === "mcp.tool_skipped" && l.obj.tool === "dotted.name")).toBe(true);
  });

  it("mcp stdio - a call returns the tool's text, or its structured content; blocks that are not text are named", async () => {
    const { src } = source();
    const a = agent([FX]);
    expect(await (await tool(src, a, "fx__echo")).invoke({ text: "hello" }, ctx())).toBe("echo: hello");
    expect(await (await tool(src, a, "fx__whoami")).invoke({}, ctx())).toEqual({ pid: expect.any(Number), cwd: FIXTURES });
    expect(await (await tool(src, a, "fx__mixed")).invoke({}, ctx())).toBe("first\n[image image/png, 4 bytes]\n[resource link file:///tmp/report.csv \"report\"]\nlast");
  });

  it("mcp stdio - a call carries its idempotency key and task in _meta", async () => {
    const { src } = source();
    const c = ctx();
    const out = await (await tool(src, agent([FX]), "fx__meta")).invoke({}, c);
    expect(JSON.parse(out as string)).toEqual({ "clawfleet/idempotencyKey": c.idempotencyKey, "clawfleet/taskId": "task-1" });
  });

  it("mcp stdio - a tool or server the agent does not declare does not resolve", async () => {
    const { src } = source();
    const a = agent([FX]);
    expect(await src.resolve(a, "fx__nope")).toBeUndefined();
    expect(await src.resolve(a, "other__echo")).toBeUndefined();
    expect(await src.resolve(a, "echo")).toBeUndefined();
    expect(await src.list({ ...a, mcpServers: {} })).toEqual([]);
  });

  it("mcp stdio - one connection (one server process) serves many calls, and every agent declaring the same server", async () => {
    const { src } = source();
    const a = agent([FX]);
    const b = agent([FX], "other-agent");
    const first = await pidOf(src, a);
    const pids = await Promise.all(Array.from({ length: 20 }, (_, i) => pidOf(src, i % 2 === 0 ? a : b)));
    for (let i = 0; i < 5; i++) pids.push(await pidOf(src, a));
    expect(new Set(pids)).toEqual(new Set([first]));
    // A different declaration (here: its env) is a different server.
    const c = agent(["  fx: {command: node, args: [./server.mjs], env: {FIXTURE_FLAG: on}}"], "third-agent");
    expect(await pidOf(src, c)).not.toBe(first);
  });

  it("mcp stdio - a server killed with SIGKILL is started again on the next call", async () => {
    const { src, log } = source();
    const a = agent([FX]);
    const pid = await pidOf(src, a);
    process.kill(pid, "SIGKILL");
    await until(() => !alive(pid) && log.some((l) => l.obj.event === "mcp.server_exited"));
    const next = await pidOf(src, a);
    expect(next).not.toBe(pid);
    expect(alive(next)).toBe(true);
    expect(log.filter((l) => l.obj.event === "mcp.connected").map((l) => l.obj.starts)).toEqual([1, 2]);
  });

  it("mcp stdio - a server that crashes mid-call gives a clear, non-retryable error with its last stderr line; the next call restarts it", async () => {
    const { src } = source();
    const a = agent([FX]);
    const pid = await pidOf(src, a);
    const err = await rejection((await tool(src, a, "fx__crash")).invoke({}, ctx()));
    expect(err).toBeInstanceOf(McpUnavailableError);
    expect(err.message).toBe("MCP server fx is unavailable: the server closed the connection (the process exited); its stderr said: fixture: crashing on purpose");
    expect(isRetryable(err)).toBe(false);
    // It was sent: the tool may have acted before the server died.
    expect((err as McpUnavailableError).outcomeUnknown).toBe(true);
    expect(await (await tool(src, a, "fx__echo")).invoke({ text: "back" }, ctx())).toBe("echo: back");
    expect(await pidOf(src, a)).not.toBe(pid);
  });

  it("mcp stdio - a tool that hangs is cut off when ctx.signal aborts; the server keeps serving", async () => {
    const { src } = source();
    const a = agent([FX]);
    const hang = await tool(src, a, "fx__hang");
    const started = Date.now();
    const err = await rejection(hang.invoke({}, ctx(AbortSignal.timeout(300))));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(err).toBeInstanceOf(McpTimeoutError);
    expect(err.message).toMatch(/^MCP server fx did not answer tools\/call "hang" within \d+ ms$/);
    expect(isRetryable(err)).toBe(false);
    expect(await (await tool(src, a, "fx__echo")).invoke({ text: "still here" }, ctx())).toBe("echo: still here");
  });

  it("mcp stdio - a tool that hangs is cut off at the executor's timeoutMs, or the source's own, even if the signal never aborts", async () => {
    const never = new AbortController().signal;
    const a = agent([FX]);
    const plain = await tool(source().src, a, "fx__hang");
    expect(plain.timeoutMs).toBeUndefined();
    const byCtx = await rejection(plain.invoke({}, { ...ctx(never), timeoutMs: 300 }));
    expect(byCtx.message).toBe('MCP server fx did not answer tools/call "hang" within 300 ms');

    const bounded = await tool(source({ callTimeoutMs: 250 }).src, a, "fx__hang");
    expect(bounded.timeoutMs).toBe(250);
    const byOption = await rejection(bounded.invoke({}, ctx(never)));
    expect(byOption.message).toBe('MCP server fx did not answer tools/call "hang" within 250 ms');
  });

  it("mcp stdio - an isError result rejects with the tool's own words, not retryable", async () => {
    const { src } = source();
    const err = await rejection((await tool(src, agent([FX]), "fx__fail")).invoke({}, ctx()));
    expect(err).toBeInstanceOf(McpToolError);
    expect(err.message).toBe("MCP tool fx__fail failed: the fixture failed on purpose");
    expect(isRetryable(err)).toBe(false);
  });

  it("mcp stdio - a server sees its file's env and PATH, none of the executor's environment", async () => {
    const saved = { ...process.env };
    process.env.ANTHROPIC_API_KEY = "sk-ant-test-secret-value";
    process.env.DATABASE_URL = "postgres://user:secret@db/clawfleet";
    process.env.HOME ??= "/root";
    try {
      const { src } = source();
      const a = agent(["  fx: {command: node, args: [./server.mjs], env: {FIXTURE_FLAG: on, RETRIES: 3}}"]);
      const env = await tool(src, a, "fx__env");
      expect(await env.invoke({ name: "ANTHROPIC_API_KEY" }, ctx())).toEqual({ names: ["FIXTURE_FLAG", "PATH", "RETRIES"], value: null });
      expect(await env.invoke({ name: "PATH" }, ctx())).toMatchObject({ value: process.env.PATH });
      expect(await env.invoke({ name: "RETRIES" }, ctx())).toMatchObject({ value: "3" });
    } finally {
      process.env = saved;
    }
  });

  it("mcp stdio - a server that never answers: its tools are left out after the connect timeout, the agent's others stay, its calls fail at once", async () => {
    // Long enough for a node process to start on a loaded machine (fx must make it), short for a test.
    const { src, log } = source({ connectTimeoutMs: 2_000 });
    const a = agent([FX, "  mute: {command: node, args: [./server.mjs, --hang-on-start]}"]);
    const started = Date.now();
    const tools = await src.list(a);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(tools.map((t) => t.name)).toContain("fx__echo");
    expect(tools.some((t) => t.name.startsWith("mute__"))).toBe(false);
    const warn = log.find((l) => l.obj.event === "mcp.tools_unavailable");
    expect(warn?.msg).toBe("tools of MCP server mute are left out for agent stock-desk: MCP server mute is unavailable: did not answer the MCP handshake within 2000 ms");

    // The model may still name one: it gets the reason at once (the server is backing off), not a wait.
    const t0 = Date.now();
    const mute = await src.resolve(a, "mute__echo");
    const err = await rejection(mute!.invoke({ text: "x" }, ctx()));
    expect(Date.now() - t0).toBeLessThan(500);
    expect(err).toBeInstanceOf(McpUnavailableError);
    expect(err.message).toMatch(/^MCP server mute is unavailable: did not answer the MCP handshake within 2000 ms \(next attempt in \d+ ms\)$/);
  });

  it("mcp stdio - a server that dies on start is reported with its stderr; one that cannot be spawned, with the reason", async () => {
    const { src } = source();
    const a = agent(["  broken: {command: node, args: [./server.mjs, --exit-on-start]}", "  missing: {command: ./no-such-server}"]);
    expect(await src.list(a)).toEqual([]);
    const broken = await rejection((await src.resolve(a, "broken__echo"))!.invoke({}, ctx()));
    expect(broken.message).toMatch(/^MCP server broken is unavailable: .*its stderr said: fixture: refusing to start \(--exit-on-start\) \(next attempt in \d+ ms\)$/);
    const missing = await rejection((await src.resolve(a, "missing__echo"))!.invoke({}, ctx()));
    expect(missing.message).toMatch(/^MCP server missing is unavailable: spawn .*no-such-server ENOENT/);
  });

  it("mcp stdio - a failed server is tried again after its backoff", async () => {
    const { src } = source({ connectTimeoutMs: 300, backoffInitialMs: 500 });
    const a = agent(["  mute: {command: node, args: [./server.mjs, --hang-on-start]}"]);
    expect(await src.list(a)).toEqual([]);
    const fast = await rejection((await src.resolve(a, "mute__echo"))!.invoke({}, ctx()));
    expect(fast.message).toMatch(/next attempt in/);
    await new Promise((r) => setTimeout(r, 550));
    const t0 = Date.now();
    const again = await rejection((await src.resolve(a, "mute__echo"))!.invoke({}, ctx()));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(again.message).toMatch(/did not answer the MCP handshake within 300 ms/);
  });

  it("mcp stdio - close() stops the servers, and later calls fail without starting one", async () => {
    const { src } = source();
    const a = agent([FX]);
    const pid = await pidOf(src, a);
    await src.close();
    expect(alive(pid)).toBe(false);
    const err = await rejection((await tool(src, a, "fx__echo")).invoke({ text: "x" }, ctx()));
    expect(err.message).toBe("MCP server fx is unavailable: the executor is stopping");
  });
});
