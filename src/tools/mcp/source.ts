/**
 * The tools of the MCP servers an agent file declares (`mcp_servers`), offered
 * as `<server>__<tool>`. A server that is down or slow never holds a task up:
 * listing leaves its tools out (with a warning) once the connect or list
 * timeout passes, and calling one of its tools fails with the reason, which the
 * model reads as the tool's result.
 */
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import type { AgentDefinition } from "../../agent/definition";
import type { Logger } from "../../logging";
import type { ResolvedTool, ToolSource } from "../source";
import type { ToolContext } from "../tool";
import { endpointOf, mcpToolName, splitMcpToolName } from "./config";
import type { McpConnection } from "./connection";
import { outputOf, textOf } from "./content";
import { McpToolError } from "./errors";
import { McpPool } from "./pool";
import { mcpSdk } from "./sdk";

export interface McpToolSourceOptions {
  logger: Pick<Logger, "info" | "warn">;
  /** Start a stdio server (or reach an HTTP one) and complete the MCP handshake. @default 10000 */
  connectTimeoutMs?: number;
  /** One `tools/list` page. @default 5000 */
  listTimeoutMs?: number;
  /**
   * A tool call: when set, the `timeoutMs` the executor is given for every MCP tool (it aborts `ctx.signal` then).
   * Unset, the executor's default applies; the request itself gives up at `ctx.timeoutMs`, else after 10000 ms.
   */
  callTimeoutMs?: number;
  /** Wait after a failed start, doubled per consecutive failure up to `backoffMaxMs`. @default 1000 */
  backoffInitialMs?: number;
  /** @default 30000 */
  backoffMaxMs?: number;
  /** The `PATH` stdio servers get (the only variable of this process they see). @default this process's PATH */
  path?: string;
}

/** The bound of a call when neither the executor (`ctx.timeoutMs`) nor the options give one. */
const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** The `_meta` keys a call carries, so a server can dedupe a re-execution as a Moleculer tool can. */
export const MCP_META_IDEMPOTENCY_KEY = "clawfleet/idempotencyKey";
export const MCP_META_TASK_ID = "clawfleet/taskId";

export class McpToolSource implements ToolSource {
  readonly kind = "mcp" as const;
  private readonly pool: McpPool;
  private readonly logger: Pick<Logger, "info" | "warn">;
  private readonly callTimeoutMs: number | undefined;
  private readonly path: string | undefined;
  /** The connection of each declared server, per agent definition (a new version of the file is a new object). */
  private readonly byAgent = new WeakMap<AgentDefinition, Map<string, McpConnection>>();

  constructor(opts: McpToolSourceOptions) {
    this.logger = opts.logger;
    this.callTimeoutMs = opts.callTimeoutMs;
    this.path = opts.path ?? mcpSdk().stdio.getDefaultEnvironment().PATH;
    this.pool = new McpPool({
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      listTimeoutMs: opts.listTimeoutMs ?? 5_000,
      backoffInitialMs: opts.backoffInitialMs ?? 1_000,
      backoffMaxMs: opts.backoffMaxMs ?? 30_000,
      clientInfo: { name: "clawfleet", version: "0.1.0" },
      logger: opts.logger,
    });
  }

  async resolve(agent: AgentDefinition, name: string): Promise<ResolvedTool | undefined> {
    const split = splitMcpToolName(name);
    const conn = split && this.connectionOf(agent, split.server);
    if (!split || !conn) return undefined;
    let tools: Tool[];
    try {
      tools = await conn.listTools(split.server);
    } catch (err) {
      // Down: the model still gets a result for the call it made, saying why (or the call runs, if the server is back).
      const description = `(unavailable now: ${(err as Error).message})`;
      return this.resolved(conn, split.server, name, { name: split.tool, description, inputSchema: { type: "object" } });
    }
    const tool = tools.find((t) => t.name === split.tool);
    return tool && this.resolved(conn, split.server, name, tool);
  }

  async list(agent: AgentDefinition): Promise<ResolvedTool[]> {
    const lists = await Promise.all(
      Object.keys(agent.mcpServers).map(async (server) => {
        const conn = this.connectionOf(agent, server);
        if (!conn) return [];
        try {
          const tools = await conn.listTools(server);
          return tools.flatMap((tool) => {
            const name = mcpToolName(server, tool.name);
            if (name !== undefined) return [this.resolved(conn, server, name, tool)];
            this.logger.warn(
              { event: "mcp.tool_skipped", agent: agent.name, server, tool: tool.name },
              `MCP tool ${server}__${tool.name} is left out: tool names match ^[a-zA-Z0-9_-]{1,64}$`,
            );
            return [];
          });
        } catch (err) {
          this.logger.warn(
            { event: "mcp.tools_unavailable", agent: agent.name, server, err: (err as Error).message },
            `tools of MCP server ${server} are left out for agent ${agent.name}: ${(err as Error).message}`,
          );
          return [];
        }
      }),
    );
    return lists.flat();
  }

  /** Stops the stdio servers and ends the HTTP sessions (on executor stop). */
  close(): Promise<void> {
    return this.pool.close();
  }

  private connectionOf(agent: AgentDefinition, server: string): McpConnection | undefined {
    const config = Object.hasOwn(agent.mcpServers, server) ? agent.mcpServers[server] : undefined;
    if (!config) return undefined;
    let conns = this.byAgent.get(agent);
    if (!conns) this.byAgent.set(agent, (conns = new Map<string, McpConnection>()));
    let conn = conns.get(server);
    if (!conn) {
      conn = this.pool.connection(endpointOf(config, agent.sourceDir, this.path));
      conns.set(server, conn);
    }
    return conn;
  }

  private resolved(conn: McpConnection, server: string, name: string, tool: Pick<Tool, "name" | "description" | "title" | "inputSchema" | "annotations">): ResolvedTool {
    const { $schema: _ignored, ...inputSchema } = tool.inputSchema as Record<string, unknown>;
    return {
      name,
      description: tool.description ?? tool.title ?? tool.annotations?.title ?? "",
      inputSchema,
      // MCP's default: a tool changes the world unless it says it only reads.
      sideEffect: tool.annotations?.readOnlyHint !== true,
      ...(this.callTimeoutMs === undefined ? {} : { timeoutMs: this.callTimeoutMs }),
      target: `mcp:${server}`,
      invoke: async (input: unknown, ctx: ToolContext) => {
        if (input === null || typeof input !== "object" || Array.isArray(input)) throw new McpToolError(server, tool.name, "the input must be a JSON object");
        const result = await conn.callTool(server, tool.name, input as Record<string, unknown>, {
          signal: ctx.signal,
          timeoutMs: ctx.timeoutMs ?? this.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
          meta: { [MCP_META_IDEMPOTENCY_KEY]: ctx.idempotencyKey, [MCP_META_TASK_ID]: ctx.taskId },
        });
        if (result.isError === true) throw new McpToolError(server, tool.name, textOf(result) || "the tool reported an error");
        return outputOf(result);
      },
    };
  }
}
