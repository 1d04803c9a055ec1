/**
 * One MCP server as the executor holds it: a client connected on first use,
 * shared by every call (JSON-RPC multiplexes them), its tool list cached until
 * the server says it changed or the connection is replaced.
 *
 * A stdio server that dies (or an HTTP session that breaks) leaves the
 * connection empty; the next call starts the server again. Failed starts back
 * off exponentially, and while backing off every call fails at once with the
 * last reason: a server that is down costs the model one prompt error, never a
 * wait. Every wait on the server is bounded (connect, list, call).
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "../../logging";
import type { McpEndpoint } from "./config";
import { McpTimeoutError, McpToolError, McpUnavailableError } from "./errors";
import { loadedMcpSdk, mcpSdk } from "./sdk";

export interface McpConnectionOptions {
  /** Start (or reach) the server and finish the MCP handshake. */
  connectTimeoutMs: number;
  /** One `tools/list` page. */
  listTimeoutMs: number;
  /** First wait after a failed start; doubles per consecutive failure. */
  backoffInitialMs: number;
  backoffMaxMs: number;
  clientInfo: { name: string; version: string };
  logger: Pick<Logger, "info" | "warn">;
}

export interface McpCallOptions {
  signal: AbortSignal;
  timeoutMs: number;
  /** Sent as the request's `_meta` (the idempotency key, the task). */
  meta: Record<string, unknown>;
}

/** A server that pages its tool list forever is cut off here. */
const MAX_TOOL_PAGES = 20;
/** Lines of a stdio server's stderr kept to explain a failed start. */
const STDERR_TAIL_LINES = 5;

/** Sentinel thrown from inside a bounded wait. */
class Elapsed extends Error {}

export class McpConnection {
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private tools: { client: Client; list: Promise<Tool[]> } | undefined;
  private failures = 0;
  private retryAt = 0;
  private lastFailure = "";
  private closed = false;
  private stderrTail: string[] = [];
  private starts = 0;
  /** Clients being closed in the background (a stdio server being stopped): `close()` waits for them. */
  private readonly closing = new Set<Promise<void>>();

  constructor(
    readonly key: string,
    readonly endpoint: McpEndpoint,
    private readonly opts: McpConnectionOptions,
  ) {}

  /** The server's tools; `server` is the name the caller knows it by (for its error messages). */
  async listTools(server: string): Promise<Tool[]> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.connect(server);
      if (this.tools?.client !== client) {
        const list = this.fetchTools(server, client);
        this.tools = { client, list };
        // A failed listing is not cached: the next caller asks again (or finds the connection gone).
        list.catch(() => {
          if (this.tools?.list === list) this.tools = undefined;
        });
      }
      try {
        return await this.tools.list;
      } catch (err) {
        if (attempt === 1 && isSessionLost(err)) continue;
        throw isSessionLost(err) ? new McpUnavailableError(server, this.describe(err)) : err;
      }
    }
  }

  async callTool(server: string, tool: string, args: Record<string, unknown>, opts: McpCallOptions): Promise<CallToolResult> {
    const started = performance.now();
    const timedOut = () => new McpTimeoutError(server, tool, opts.signal.aborted ? Math.round(performance.now() - started) : opts.timeoutMs);
    for (let attempt = 1; ; attempt++) {
      const client = await abortable(this.connect(server), opts.signal).catch((err: unknown) => {
        throw err instanceof Elapsed ? timedOut() : err;
      });
      try {
        const result = await client.callTool({ name: tool, arguments: args, _meta: opts.meta }, undefined, { signal: opts.signal, timeout: opts.timeoutMs });
        return result as CallToolResult;
      } catch (err) {
        if (opts.signal.aborted || isTimeout(err)) throw timedOut();
        if (isAnswer(err)) throw new McpToolError(server, tool, (err as Error).message);
        this.drop(client, server, err);
        await this.lastWords(err);
        // An HTTP server that forgot the session never saw the request: a new session may run it (MCP spec).
        if (attempt === 1 && isSessionLost(err)) continue;
        throw new McpUnavailableError(server, this.describe(err), !neverDelivered(err));
      }
    }
  }

  /** Closes the client (and stops a stdio server); calls after this fail at once. */
  async close(): Promise<void> {
    this.closed = true;
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    this.client = undefined;
    this.tools = undefined;
    // An HTTP session is ended on the server too (MCP: DELETE with the session id), within a bound.
    const transport = client?.transport;
    const sdk = loadedMcpSdk();
    if (sdk && transport instanceof sdk.http.StreamableHTTPClientTransport && transport.sessionId !== undefined)
      await bounded(transport.terminateSession(), 1_000).catch(() => undefined);
    await Promise.all([client?.close(), ...this.closing]);
  }

  private async connect(server: string): Promise<Client> {
    if (this.closed) throw new McpUnavailableError(server, "the executor is stopping");
    if (this.client) return this.client;
    if (this.connecting) return this.connecting;
    const wait = this.retryAt - Date.now();
    if (wait > 0) throw new McpUnavailableError(server, `${this.lastFailure} (next attempt in ${wait} ms)`);
    const connecting = this.open(server);
    this.connecting = connecting;
    try {
      return await connecting;
    } finally {
      if (this.connecting === connecting) this.connecting = undefined;
    }
  }

  private async open(server: string): Promise<Client> {
    const sdk = mcpSdk();
    const client = new sdk.client.Client(this.opts.clientInfo, { capabilities: {} });
    const transport = this.transport(server);
    this.starts += 1;
    this.stderrTail = [];
    client.onclose = () => this.closedUnderneath(client, server);
    // While connecting, a failure is reported once, by the connect path; after that, the transport's own errors.
    client.onerror = (err) => {
      if (this.client === client) this.opts.logger.warn({ event: "mcp.error", server, key: this.key, err: err.message }, `MCP server ${server}: ${err.message}`);
    };
    const ms = this.opts.connectTimeoutMs;
    try {
      await bounded(client.connect(transport, { timeout: ms }), ms);
    } catch (err) {
      // A server that failed its handshake has nothing to finish: stopped now, not after the SDK's grace period.
      if (transport instanceof sdk.stdio.StdioClientTransport && transport.pid !== null) signal(transport.pid, "SIGTERM");
      this.closeInBackground(client);
      await this.lastWords(err);
      const failure = new McpUnavailableError(server, err instanceof Elapsed || isTimeout(err) ? `did not answer the MCP handshake within ${ms} ms` : this.describe(err));
      this.failed(server, failure);
      throw failure;
    }
    if (this.closed) {
      await client.close();
      throw new McpUnavailableError(server, "the executor is stopping");
    }
    this.client = client;
    client.setNotificationHandler(sdk.types.ToolListChangedNotificationSchema, () => {
      if (this.tools?.client === client) this.tools = undefined;
    });
    this.opts.logger.info({ event: "mcp.connected", server, key: this.key, transport: this.endpoint.transport, starts: this.starts }, `MCP server ${server} connected`);
    return client;
  }

  private transport(server: string): Transport {
    const e = this.endpoint;
    const sdk = mcpSdk();
    if (e.transport === "http") return new sdk.http.StreamableHTTPClientTransport(new URL(e.url), { requestInit: { headers: e.headers } });
    // The SDK adds HOME, USER, SHELL… of this process to whatever env it is given: blanked here (an undefined
    // value is left out by spawn), so the server sees its file's env and PATH only.
    const blanked = Object.fromEntries(sdk.stdio.DEFAULT_INHERITED_ENV_VARS.map((k) => [k, undefined])) as unknown as Record<string, string>;
    const t = new sdk.stdio.StdioClientTransport({ command: e.command, args: e.args, env: { ...blanked, ...e.env }, cwd: e.cwd, stderr: "pipe" });
    t.stderr?.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() === "") continue;
        this.stderrTail = [...this.stderrTail, line.slice(0, 300)].slice(-STDERR_TAIL_LINES);
        this.opts.logger.info({ event: "mcp.stderr", server, key: this.key, line: line.slice(0, 500) }, `MCP server ${server} (stderr)`);
      }
    });
    return t;
  }

  private async fetchTools(server: string, client: Client): Promise<Tool[]> {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      let res;
      try {
        res = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: this.opts.listTimeoutMs });
      } catch (err) {
        if (isAnswer(err)) throw new McpUnavailableError(server, `tools/list failed: ${(err as Error).message}`);
        if (isSessionLost(err)) {
          this.drop(client, server, err);
          throw err;
        }
        // Connected but not listing: the server is as good as down; the next caller starts it afresh.
        const failure = new McpUnavailableError(server, isTimeout(err) ? `did not answer tools/list within ${this.opts.listTimeoutMs} ms` : this.describe(err));
        this.drop(client, server, err);
        this.failed(server, failure);
        throw failure;
      }
      tools.push(...res.tools);
      cursor = res.nextCursor;
      if (cursor === undefined) break;
    }
    // Backoff resets only here: a server that connects but cannot list is not healthy.
    this.failures = 0;
    return tools;
  }

  private failed(server: string, failure: McpUnavailableError): void {
    this.failures += 1;
    const delay = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** (this.failures - 1));
    this.retryAt = Date.now() + delay;
    this.lastFailure = failure.reason;
    this.opts.logger.warn(
      { event: "mcp.unavailable", server, key: this.key, failures: this.failures, retry_in_ms: delay, err: failure.message },
      `${failure.message}; next attempt in ${delay} ms`,
    );
  }

  /** Forgets a client whose transport broke, and closes it (a stdio server is stopped) without waiting. */
  private drop(client: Client, server: string, err: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.tools = undefined;
    this.opts.logger.warn({ event: "mcp.connection_dropped", server, key: this.key, err: this.describe(err) }, `MCP server ${server}: connection dropped`);
    this.closeInBackground(client);
  }

  private closeInBackground(client: Client): void {
    const closing = client
      .close()
      .catch((err: unknown) => this.opts.logger.warn({ event: "mcp.close_failed", key: this.key, err: String(err) }, "closing an MCP client failed"))
      .finally(() => this.closing.delete(closing));
    this.closing.add(closing);
  }

  /** A stdio server that exited may still have stderr lines in flight: they say why, so they are waited for, briefly. */
  private async lastWords(err: unknown): Promise<void> {
    if (this.endpoint.transport === "stdio" && mcpErrorOf(err)?.closed) await new Promise((r) => setTimeout(r, 20));
  }

  /** Why the server could not be reached, for a person or the model to read (no query string, no headers). */
  private describe(err: unknown): string {
    let reason: string;
    const cause = err instanceof Error ? (err as Error & { cause?: unknown }).cause : undefined;
    if (mcpErrorOf(err)?.closed) reason = "the server closed the connection (the process exited)";
    else if (this.endpoint.transport === "http" && err instanceof TypeError && cause instanceof Error) {
      const u = new URL(this.endpoint.url);
      reason = `could not reach ${u.origin}${u.pathname}: ${(cause as Error & { code?: string }).code ?? cause.message}`;
    } else reason = err instanceof Error ? err.message : String(err);
    const tail = this.endpoint.transport === "stdio" ? this.stderrTail.at(-1) : undefined;
    return tail === undefined ? reason : `${reason}; its stderr said: ${tail}`;
  }

  private closedUnderneath(client: Client, server: string): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.tools = undefined;
    if (!this.closed)
      this.opts.logger.warn(
        { event: "mcp.server_exited", server, key: this.key, stderr: this.stderrTail.join("\n") },
        `MCP server ${server} closed its connection; it is started again on the next call`,
      );
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone already: what was wanted.
  }
}

/**
 * An error the SDK raised (`McpError`): whether its JSON-RPC code is one the SDK raises itself, for a closed
 * connection or a timeout (a number on the error, an enum in its types). Undefined for any other error.
 */
function mcpErrorOf(err: unknown): { closed: boolean; timedOut: boolean } | undefined {
  const sdk = loadedMcpSdk();
  if (!sdk || !(err instanceof sdk.types.McpError)) return undefined;
  const code: number = err.code;
  return { closed: code === (sdk.types.ErrorCode.ConnectionClosed as number), timedOut: code === (sdk.types.ErrorCode.RequestTimeout as number) };
}

/** The SDK's own timeout, or its cancellation by our signal. */
function isTimeout(err: unknown): boolean {
  return mcpErrorOf(err)?.timedOut === true;
}

/** An HTTP server that no longer knows the session (restarted, or expired it): a new session is in order. */
function isSessionLost(err: unknown): boolean {
  const sdk = loadedMcpSdk();
  return sdk !== undefined && err instanceof sdk.http.StreamableHTTPError && err.code === 404;
}

/** A request that certainly never reached the server: refused, or addressed to an unknown session. */
function neverDelivered(err: unknown): boolean {
  if (isSessionLost(err)) return true;
  const cause = err instanceof TypeError ? (err as TypeError & { cause?: { code?: unknown } }).cause : undefined;
  return typeof cause?.code === "string" && ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN"].includes(cause.code);
}

/** An error the server sent in answer (JSON-RPC error), as opposed to a broken or closed connection. */
function isAnswer(err: unknown): boolean {
  const e = mcpErrorOf(err);
  return e !== undefined && !e.closed && !e.timedOut;
}

/** Rejects with `Elapsed` after `ms`. */
async function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Elapsed()), ms);
  });
  try {
    return await Promise.race([p, elapsed]);
  } finally {
    clearTimeout(timer);
  }
}

/** Rejects with `Elapsed` when `signal` aborts first. */
async function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) throw new Elapsed();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new Elapsed());
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([p, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}
