import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { AgentCatalog, parseAgentFile, type McpServerConfig } from "../../src/agent/definition";
import { ConfigError } from "../../src/errors";
import { endpointKey, endpointOf, mcpToolName, splitMcpToolName } from "../../src/tools/mcp/config";

function agentFile(frontMatter: string[]): string {
  return [
    "---",
    "name: stock-desk",
    "tiers:",
    "  default:",
    "    model: claude-haiku-5-5",
    "    max_tokens: 512",
    "default_tier: default",
    ...frontMatter,
    "---",
    "You answer stock questions.",
    "",
  ].join("\n");
}

const parse = (...frontMatter: string[]) => parseAgentFile(agentFile(frontMatter), "prompts/stock-desk.md");

function parseError(...frontMatter: string[]): string {
  try {
    parse(...frontMatter);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("the agent file was accepted");
}

describe("agent file - mcp_servers", () => {
  it("agent file - stdio and Streamable HTTP servers parse into typed configs", () => {
    const def = parse(
      "mcp_servers:",
      "  inventory:",
      "    command: node",
      "    args: [./mcp/server.mjs, --port, 8080]",
      "    env: {LOG_LEVEL: debug, RETRIES: 3, VERBOSE: true}",
      "  search-api:",
      "    url: https://mcp.example.com/mcp",
      "    headers: {X-Team: stock}",
      "tools: [inventory__find_item, search-api__*]",
    );
    expect(def.mcpServers).toEqual({
      inventory: { transport: "stdio", command: "node", args: ["./mcp/server.mjs", "--port", "8080"], env: { LOG_LEVEL: "debug", RETRIES: "3", VERBOSE: "true" } },
      "search-api": { transport: "http", url: "https://mcp.example.com/mcp", headers: { "X-Team": "stock" } },
    });
    expect(def.tools).toEqual(["inventory__find_item", "search-api__*"]);
  });

  it("agent file - no mcp_servers is an empty table, and no source folder for an agent given as text", () => {
    const def = parse();
    expect(def.mcpServers).toEqual({});
    expect(def.sourceDir).toBeUndefined();
  });

  it("agent file - a server name that cannot prefix <server>__<tool> is refused, naming the rule", () => {
    for (const name of ["inv__tools", "_inv", "inv_", "in.v", "x".repeat(62)]) {
      const msg = parseError("mcp_servers:", `  ${name}: {command: node}`);
      expect(msg).toContain(`mcp_servers.${name}`);
      expect(msg).toMatch(/no "__"/);
    }
    expect(parse("mcp_servers:", `  ${"x".repeat(61)}: {command: node}`).mcpServers).toHaveProperty("x".repeat(61));
  });

  it("agent file - a server is stdio or Streamable HTTP, never both or neither", () => {
    expect(parseError("mcp_servers:", "  inv: {command: node, url: 'http://127.0.0.1:1/mcp'}")).toMatch(/mcp_servers\.inv.*both command and url/);
    expect(parseError("mcp_servers:", "  inv: {args: [x]}")).toMatch(/mcp_servers\.inv.*neither command nor url/);
    expect(parseError("mcp_servers:", "  inv: {url: 'http://127.0.0.1:1/mcp', env: {A: b}}")).toMatch(/args and env belong to a stdio server/);
    expect(parseError("mcp_servers:", "  inv: {command: node, headers: {A: b}}")).toMatch(/headers belong to a Streamable HTTP server/);
  });

  it("agent file - bad fields of a server name the field", () => {
    expect(parseError("mcp_servers:", "  inv: {command: ''}")).toMatch(/mcp_servers\.inv\.command.*empty/);
    expect(parseError("mcp_servers:", "  inv: {command: node, cwd: /tmp}")).toMatch(/mcp_servers\.inv.*cwd/);
    expect(parseError("mcp_servers:", "  inv: {url: 'ftp://example.com/mcp'}")).toMatch(/mcp_servers\.inv\.url.*http:\/\/ or https:\/\//);
    expect(parseError("mcp_servers:", "  inv: {url: 'not a url'}")).toMatch(/mcp_servers\.inv\.url/);
    expect(parseError("mcp_servers:", "  inv: {command: node, env: {'BAD-NAME': x}}")).toMatch(/mcp_servers\.inv\.env\.BAD-NAME.*environment variable names/);
    expect(parseError("mcp_servers:", "  inv: {command: node, args: [{a: 1}]}")).toMatch(/mcp_servers\.inv\.args\.0.*expected a string/);
    expect(parseError("mcp_servers:", "  inv: {url: 'https://example.com/mcp', headers: {'Bad Header': x}}")).toMatch(/not a valid HTTP header name/);
    expect(parseError("mcp_servers: [inv]")).toMatch(/front matter field "mcp_servers"/);
  });

  it("agent file - a <server>__* tools entry must name a declared server", () => {
    expect(parseError("tools: [inventory__*]")).toMatch(/tools entry "inventory__\*" names MCP server "inventory", which mcp_servers does not declare/);
    expect(parse("tools: [lookup__order]").tools).toEqual(["lookup__order"]);
  });

  it("agent catalog - an agent read from a folder knows that folder", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-mcp-"));
    try {
      fs.writeFileSync(path.join(dir, "stock-desk.md"), agentFile(["mcp_servers:", "  inv: {command: node, args: [../mcp/server.mjs]}"]));
      const def = AgentCatalog.load(dir).get("stock-desk");
      expect(def.sourceDir).toBe(path.resolve(dir));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("mcp config", () => {
  const stdio = (over: Partial<Extract<McpServerConfig, { transport: "stdio" }>> = {}): McpServerConfig => ({
    transport: "stdio",
    command: "node",
    args: ["./server.mjs"],
    env: {},
    ...over,
  });

  it("mcp config - relative command and ./ ../ args resolve against the agent file's folder, which is the server's cwd", () => {
    const e = endpointOf(stdio({ command: "./bin/serve", args: ["../mcp/server.mjs", "--flag", "data/x.json", "/abs/y"] }), "/srv/agents/prompts", "/usr/bin");
    expect(e).toEqual({
      transport: "stdio",
      command: "/srv/agents/prompts/bin/serve",
      args: ["/srv/agents/mcp/server.mjs", "--flag", "data/x.json", "/abs/y"],
      env: { PATH: "/usr/bin" },
      cwd: "/srv/agents/prompts",
    });
    expect(endpointOf(stdio({ command: "node" }), "/srv", "/usr/bin")).toMatchObject({ command: "node" });
  });

  it("mcp config - the server's env is the file's plus PATH, which the file may override", () => {
    expect(endpointOf(stdio({ env: { A: "1" } }), "/srv", "/usr/bin")).toMatchObject({ env: { PATH: "/usr/bin", A: "1" } });
    expect(endpointOf(stdio({ env: { PATH: "/opt/bin" } }), "/srv", "/usr/bin")).toMatchObject({ env: { PATH: "/opt/bin" } });
  });

  it("mcp config - the pool key is the same for the same server, different for any difference", () => {
    const key = (c: McpServerConfig, dir = "/srv") => endpointKey(endpointOf(c, dir, "/usr/bin"));
    expect(key(stdio({ env: { A: "1", B: "2" } }))).toBe(key(stdio({ env: { B: "2", A: "1" } })));
    expect(key(stdio())).not.toBe(key(stdio(), "/elsewhere"));
    expect(key(stdio())).not.toBe(key(stdio({ env: { A: "1" } })));
    const http = (headers: Record<string, string>): McpServerConfig => ({ transport: "http", url: "http://127.0.0.1:1/mcp", headers });
    expect(key(http({}))).not.toBe(key(http({ Authorization: "x" })));
  });

  it("mcp config - tool names join and split at the first __", () => {
    expect(mcpToolName("inventory", "find_item")).toBe("inventory__find_item");
    expect(mcpToolName("inventory", "files.read")).toBeUndefined();
    expect(mcpToolName("x".repeat(61), "abcd")).toBeUndefined();
    expect(splitMcpToolName("inventory__find__item")).toEqual({ server: "inventory", tool: "find__item" });
    expect(splitMcpToolName("inventory_find")).toBeUndefined();
    expect(splitMcpToolName("__x")).toBeUndefined();
    expect(splitMcpToolName("x__")).toBeUndefined();
  });
});
