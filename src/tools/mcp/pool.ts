/**
 * The executor process's MCP connections: one per distinct server (the same
 * endpoint declared by several agents, or several times, is one connection),
 * keyed by a hash of the endpoint, created on first use and closed when the
 * executor stops.
 */
import { endpointKey, type McpEndpoint } from "./config";
import { McpConnection, type McpConnectionOptions } from "./connection";

export class McpPool {
  private readonly connections = new Map<string, McpConnection>();
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: McpConnectionOptions) {}

  /** The connection for `endpoint` (not connected until a caller uses it). */
  connection(endpoint: McpEndpoint): McpConnection {
    const key = endpointKey(endpoint);
    let conn = this.connections.get(key);
    if (!conn) {
      conn = new McpConnection(key, endpoint, this.opts);
      // After close, a new connection is closed at once, so its calls fail instead of starting a server.
      if (this.closing) void conn.close();
      this.connections.set(key, conn);
    }
    return conn;
  }

  get size(): number {
    return this.connections.size;
  }

  /** Stops every stdio server and ends every session; idempotent. */
  close(): Promise<void> {
    this.closing ??= Promise.allSettled([...this.connections.values()].map((c) => c.close())).then((results) => {
      for (const r of results) {
        if (r.status === "rejected") this.opts.logger.warn({ event: "mcp.close_failed", err: String(r.reason) }, "closing an MCP connection failed");
      }
    });
    return this.closing;
  }
}
