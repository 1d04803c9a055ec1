/**
 * A deterministic model for tests and examples: each turn is produced by a
 * script function from the request, and every request is recorded. It
 * implements the same `LlmClient` the agent loop uses in production.
 */
import type { CompleteRequest, CompleteResponse, ContentBlock } from "../contracts";
import type { LlmClient } from "./client";

export type ScriptedTurn =
  | { content: ContentBlock[]; stop_reason?: string; usage?: { input_tokens: number; output_tokens: number } }
  | Error;

export type Script = (req: CompleteRequest, turn: number) => ScriptedTurn;

export class ScriptedModel implements LlmClient {
  readonly requests: CompleteRequest[] = [];

  constructor(private readonly script: Script | readonly ScriptedTurn[]) {}

  async complete(req: CompleteRequest): Promise<CompleteResponse> {
    const turn = this.requests.length;
    // Keep a snapshot: the loop keeps appending to the same message array.
    this.requests.push({ ...req, messages: [...req.messages] });
    const next = typeof this.script === "function" ? this.script(req, turn) : this.script[turn];
    if (next === undefined) throw new Error(`scripted model has no turn ${turn}`);
    if (next instanceof Error) throw next;
    const hasToolUse = next.content.some((b) => b.type === "tool_use");
    return {
      id: `msg_scripted_${turn}`,
      model: req.model,
      content: next.content,
      stop_reason: next.stop_reason ?? (hasToolUse ? "tool_use" : "end_turn"),
      usage: {
        input_tokens: next.usage?.input_tokens ?? 100,
        output_tokens: next.usage?.output_tokens ?? 20,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
      },
      duration_ms: 1,
    };
  }
}

export const text = (t: string): ContentBlock => ({ type: "text", text: t });
export const toolUse = (id: string, name: string, input: unknown): ContentBlock => ({ type: "tool_use", id, name, input });
