/**
 * From an `mcp_servers` entry of an agent file to what the pool connects to:
 * paths made absolute against the agent file's folder, the child's environment
 * reduced to what the file gives plus `PATH`, and a key that is the same for
 * the same server wherever it is declared.
 */
import { createHash } from "node:crypto";
import path from "node:path";
import { MCP_TOOL_SEPARATOR, type McpServerConfig } from "../../agent/definition";

export type McpEndpoint =
  | { transport: "stdio"; command: string; args: string[]; env: Record<string, string>; cwd: string | undefined }
  | { transport: "http"; url: string; headers: Record<string, string> };

/** The Messages API's rule for tool names. */
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** `./x`, `../x` (and `x/y` for a command, which is never looked up on `PATH`). */
function isRelativePath(p: string, orNested: boolean): boolean {
  if (path.isAbsolute(p)) return false;
  return p === "." || p === ".." || p.startsWith("./") || p.startsWith("../") || (orNested && p.includes("/"));
}

/**
 * `inheritedPath`: the executor's `PATH`, the one variable of its environment a server gets (so `node` or `npx`
 * resolve); the file's `env` may override it. Nothing else is inherited: not the node's secrets.
 */
export function endpointOf(config: McpServerConfig, sourceDir: string | undefined, inheritedPath: string | undefined): McpEndpoint {
  if (config.transport === "http") return { transport: "http", url: config.url, headers: { ...config.headers } };
  const base = sourceDir ?? process.cwd();
  const command = isRelativePath(config.command, true) ? path.resolve(base, config.command) : config.command;
  const args = config.args.map((a) => (isRelativePath(a, false) ? path.resolve(base, a) : a));
  const env = { ...(inheritedPath === undefined ? {} : { PATH: inheritedPath }), ...config.env };
  return { transport: "stdio", command, args, env, cwd: sourceDir };
}

/** Same server, same key: sorted-key JSON of the endpoint, hashed. */
export function endpointKey(endpoint: McpEndpoint): string {
  return createHash("sha256").update(canonicalJson(endpoint)).digest("hex").slice(0, 16);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** `<server>__<tool>`, or undefined when that is not a name the Messages API accepts. */
export function mcpToolName(server: string, tool: string): string | undefined {
  const name = `${server}${MCP_TOOL_SEPARATOR}${tool}`;
  return TOOL_NAME.test(name) ? name : undefined;
}

/** The server and tool of `<server>__<tool>` (server names hold no `__`, so the first one splits). */
export function splitMcpToolName(name: string): { server: string; tool: string } | undefined {
  const at = name.indexOf(MCP_TOOL_SEPARATOR);
  if (at <= 0 || at + MCP_TOOL_SEPARATOR.length >= name.length) return undefined;
  return { server: name.slice(0, at), tool: name.slice(at + MCP_TOOL_SEPARATOR.length) };
}
