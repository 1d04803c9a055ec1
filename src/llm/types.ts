import type { ContentBlock, Priority } from "../domain";

/** A message of the conversation as the Messages API takes it. */
export type MessageParam =
  | { role: "user"; content: string | UserBlock[] }
  | { role: "assistant"; content: ContentBlock[] };

export type UserBlock =
  | { type: "text"; text: string }
  | { type: "tool_result"; tool_use_id: string; content: string; is_error?: boolean };

/** A tool as offered to the model. */
export interface ToolSpec {
  name: string;
  description: string;
  input_schema: Record<string, unknown>;
}

export interface LlmUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens: number;
  cache_creation_input_tokens: number;
}

export interface CompleteRequest {
  taskId: string;
  agent: string;
  promptVersion: string;
  step: number;
  tier: string;
  model: string;
  maxTokens: number;
  priority: Priority;
  system: string;
  messages: MessageParam[];
  tools: ToolSpec[];
}

export interface CompleteResponse {
  id: string;
  model: string;
  content: ContentBlock[];
  stop_reason: string | null;
  usage: LlmUsage;
  duration_ms: number;
  /** The gateway's `chat` span (W3C traceparent): the parent of the tool calls this turn asks for. */
  traceparent?: string;
}

/** What the agent loop calls for a model turn: the rate-gateway over the broker, or a scripted model in tests. */
export interface LlmClient {
  complete(req: CompleteRequest): Promise<CompleteResponse>;
}
