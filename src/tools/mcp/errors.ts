/**
 * What an MCP tool call can end in besides a result. None is retryable: the
 * server is the agent file's own, so the model reads the error as the tool's
 * result (and can work around it) instead of the step being retried against a
 * server that stays down, which would stall the task.
 */

abstract class McpFailure extends Error {
  /** Read by the executor's retry policy: a broken MCP server is the tool's failure, told to the model. */
  readonly retryable = false;
  constructor(
    public readonly server: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The server could not be started or reached, or its connection broke. `outcomeUnknown`: the call had been
 * sent when the connection broke (a stdio server that died mid-call), so the tool may have acted.
 */
export class McpUnavailableError extends McpFailure {
  override readonly name = "McpUnavailableError";
  constructor(
    server: string,
    public readonly reason: string,
    public readonly outcomeUnknown = false,
  ) {
    super(server, `MCP server ${server} is unavailable: ${reason}`);
  }
}

/** A tool call the server did not answer in time (it was cancelled): whether the tool acted is unknown. */
export class McpTimeoutError extends McpFailure {
  override readonly name = "McpTimeoutError";
  constructor(
    server: string,
    public readonly tool: string,
    public readonly ms: number,
  ) {
    super(server, `MCP server ${server} did not answer tools/call "${tool}" within ${ms} ms`);
  }
}

/** The server answered, with an error: `isError: true` from the tool, or a JSON-RPC error. */
export class McpToolError extends McpFailure {
  override readonly name = "McpToolError";
  constructor(
    server: string,
    public readonly tool: string,
    public readonly detail: string,
  ) {
    super(server, `MCP tool ${server}__${tool} failed: ${detail}`);
  }
}
