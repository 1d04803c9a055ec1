/**
 * The MCP tool source against a real Streamable HTTP MCP server, started here
 * on 127.0.0.1 and a random port, and against HTTP servers that are down or
 * never answer.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseAgentFile, type AgentDefinition } from "../../src/agent/definition";
import { isRetryable } from "../../src/errors";
import { McpToolSource, McpUnavailableError, type McpToolSourceOptions } from "../../src/tools/mcp";
import type { ToolContext } from "../../src/tools/tool";
import { rejection } from "../helpers/rejection";

/** A stateful Streamable HTTP MCP server: one McpServer per session, as the SDK's examples run it. */
class HttpMcpServer {
  readonly sessions = new Map<string, StreamableHTTPServerTransport>();
  opened = 0;
  readonly teams: string[] = [];
  private readonly server = http.createServer((req, res) => void this.handle(req, res));

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/mcp`;
  }

  /** Forgets every session, as a restarted server would. */
  forgetSessions(): void {
    this.sessions.clear();
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const team = req.headers["x-team"];
    if (typeof team === "string") this.teams.push(team);
    const sid = req.headers["mcp-session-id"];
    let transport = typeof sid === "string" ? this.sessions.get(sid) : undefined;
    if (!transport) {
      if (sid !== undefined) {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null }));
        return;
      }
      const t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => void this.sessions.set(id, t) });
      this.opened += 1;
      await this.mcpServer().connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res);
  }

  private mcpServer(): McpServer {
    const server = new McpServer({ name: "http-fixture", version: "1.0.0" });
    server.registerTool(
      "lookup",
      { description: "Looks a SKU up.", inputSchema: { sku: z.string() }, annotations: { readOnlyHint: true } },
      async ({ sku }) => ({ content: [{ type: "text", text: `found ${sku}` }], structuredContent: { sku, on_hand: 12 } }),
    );
    server.registerTool("refuse", { description: "Refuses.", inputSchema: {} }, async () => ({ isError: true, content: [{ type: "text", text: "not today" }] }));
    // Registering a tool on a connected server sends notifications/tools/list_changed.
    server.registerTool("grow", { description: "Adds a tool.", inputSchema: {} }, async () => {
      server.registerTool("extra", { description: "Added later.", inputSchema: {} }, async () => ({ content: [{ type: "text", text: "extra" }] }));
      return { content: [{ type: "text", text: "grown" }] };
    });
    return server;
  }
}

function agent(servers: string[]): AgentDefinition {
  const md = ["---", "name: stock-desk", "tiers: {default: {model: claude-haiku-5-5, max_tokens: 512}}", "default_tier: default", "mcp_servers:", ...servers, "---", "Answers.", ""];
  return parseAgentFile(md.join("\n"), "stock-desk.md");
}

function ctx(): ToolContext {
  return { taskId: "task-1", step: 1, agent: "stock-desk", idempotencyKey: "task-1:1", signal: AbortSignal.timeout(5_000) };
}

const sources: McpToolSource[] = [];
const warnings: string[] = [];
function source(over: Partial<McpToolSourceOptions> = {}): McpToolSource {
  const src = new McpToolSource({ logger: { info: () => undefined, warn: (_obj, msg) => warnings.push(msg) }, ...over });
  sources.push(src);
  return src;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

let mcp: HttpMcpServer;
let url: string;

beforeAll(async () => {
  mcp = new HttpMcpServer();
  url = await mcp.start();
});

afterAll(async () => {
  await mcp.stop();
});

afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
  warnings.length = 0;
});

describe("mcp http", () => {
  it("mcp http - tools are offered as <server>__<tool> and a call returns the structured content, headers included", async () => {
    const src = source();
    const a = agent([`  catalog: {url: '${url}', headers: {X-Team: stock}}`]);
    expect((await src.list(a)).map((t) => t.name)).toEqual(["catalog__lookup", "catalog__refuse", "catalog__grow"]);
    const lookup = await src.resolve(a, "catalog__lookup");
    expect(lookup).toMatchObject({ target: "mcp:catalog", sideEffect: false });
    expect(await lookup!.invoke({ sku: "SKU-1" }, ctx())).toEqual({ sku: "SKU-1", on_hand: 12 });
    expect(mcp.teams.length).toBeGreaterThan(0);
    expect(new Set(mcp.teams)).toEqual(new Set(["stock"]));
  });

  it("mcp http - one session serves many calls", async () => {
    const src = source();
    const a = agent([`  catalog: {url: '${url}'}`]);
    const before = mcp.opened;
    const lookup = await src.resolve(a, "catalog__lookup");
    const outs = await Promise.all(Array.from({ length: 25 }, (_, i) => lookup!.invoke({ sku: `SKU-${i}` }, ctx())));
    expect(outs).toHaveLength(25);
    expect(mcp.opened - before).toBe(1);
  });

  it("mcp http - a server that lost the session (restarted) gets a new one, and the call goes through", async () => {
    const src = source();
    const a = agent([`  catalog: {url: '${url}'}`]);
    const lookup = await src.resolve(a, "catalog__lookup");
    await lookup!.invoke({ sku: "SKU-1" }, ctx());
    const before = mcp.opened;
    mcp.forgetSessions();
    expect(await lookup!.invoke({ sku: "SKU-2" }, ctx())).toEqual({ sku: "SKU-2", on_hand: 12 });
    expect(mcp.opened - before).toBe(1);
  });

  it("mcp http - the tool list is cached, and listed again when the server says it changed", async () => {
    const src = source();
    const a = agent([`  catalog: {url: '${url}'}`]);
    expect(await src.resolve(a, "catalog__extra")).toBeUndefined();
    expect(await (await src.resolve(a, "catalog__grow"))!.invoke({}, ctx())).toBe("grown");
    const end = Date.now() + 5_000;
    while (!(await src.list(a)).some((t) => t.name === "catalog__extra")) {
      if (Date.now() > end) throw new Error("the new tool never showed");
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await (await src.resolve(a, "catalog__extra"))!.invoke({}, ctx())).toBe("extra");
  });

  it("mcp http - an isError result is the tool's error, not retryable", async () => {
    const src = source();
    const a = agent([`  catalog: {url: '${url}'}`]);
    const err = await rejection((await src.resolve(a, "catalog__refuse"))!.invoke({}, ctx()));
    expect(err.message).toBe("MCP tool catalog__refuse failed: not today");
    expect(isRetryable(err)).toBe(false);
  });

  it("mcp http - a server that is down: its tools are left out at once, the agent's others stay, a call fails promptly and clearly", async () => {
    const src = source();
    const port = await closedPort();
    const a = agent([`  catalog: {url: '${url}'}`, `  down: {url: 'http://127.0.0.1:${port}/mcp'}`]);
    const t0 = Date.now();
    expect((await src.list(a)).map((t) => t.name)).toEqual(["catalog__lookup", "catalog__refuse", "catalog__grow"]);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(warnings.some((w) => w.startsWith("tools of MCP server down are left out for agent stock-desk: MCP server down is unavailable:"))).toBe(true);
    const t1 = Date.now();
    const err = await rejection((await src.resolve(a, "down__lookup"))!.invoke({ sku: "x" }, ctx()));
    expect(Date.now() - t1).toBeLessThan(1_000);
    expect(err).toBeInstanceOf(McpUnavailableError);
    expect((err as McpUnavailableError).outcomeUnknown).toBe(false);
    expect(err.message).toMatch(new RegExp(`^MCP server down is unavailable: could not reach http://127\\.0\\.0\\.1:${port}/mcp: ECONNREFUSED \\(next attempt in \\d+ ms\\)$`));
    expect(isRetryable(err)).toBe(false);
  });

  it("mcp http - a server that accepts and never answers is given up on at the connect timeout", async () => {
    const sockets = new Set<Socket>();
    const mute = http.createServer(() => undefined);
    mute.on("connection", (s) => sockets.add(s));
    await new Promise<void>((resolve) => mute.listen(0, "127.0.0.1", resolve));
    try {
      const src = source({ connectTimeoutMs: 400 });
      const a = agent([`  mute: {url: 'http://127.0.0.1:${(mute.address() as AddressInfo).port}/mcp'}`]);
      const t0 = Date.now();
      expect(await src.list(a)).toEqual([]);
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(warnings).toContain("tools of MCP server mute are left out for agent stock-desk: MCP server mute is unavailable: did not answer the MCP handshake within 400 ms");
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => mute.close(resolve));
    }
  });
});
