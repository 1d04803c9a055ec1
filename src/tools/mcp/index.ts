/** MCP servers as a tool source: what the executor and tests import. */
export { McpToolSource, MCP_META_IDEMPOTENCY_KEY, MCP_META_TASK_ID, type McpToolSourceOptions } from "./source";
export { McpTimeoutError, McpToolError, McpUnavailableError } from "./errors";
export { mcpToolName, splitMcpToolName } from "./config";
