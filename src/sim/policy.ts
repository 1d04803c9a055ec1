/**
 * How the simulated model decides a turn. A policy is a pure function of the
 * conversation (system, messages, tools): it reads the tool results the client
 * fed back and answers the next assistant turn. Policies are picked per request
 * by the tools offered, which is how one simulator plays several agents.
 */
import { createHash } from "node:crypto";
import type { MessagesRequest, RequestMessage, ToolResultContent } from "./request";
import { estimateOutputTokens, truncateToTokens } from "./tokens";
import type { SimContentBlock } from "./types";

export type { SimContentBlock } from "./types";

export type SimStopReason = "end_turn" | "tool_use" | "max_tokens";

export interface SimTurn {
  content: SimContentBlock[];
  stop_reason: SimStopReason;
}

export type PolicyRequest = Pick<MessagesRequest, "model" | "max_tokens" | "system" | "messages" | "tools">;

/** Decides the next assistant turn. Must be deterministic: same conversation, same turn. */
export type SimPolicy = (req: PolicyRequest) => SimTurn;

export interface PolicyRoute {
  name: string;
  matches(req: PolicyRequest): boolean;
  policy: SimPolicy;
}

export function offersTools(req: PolicyRequest, names: readonly string[]): boolean {
  const offered = new Set((req.tools ?? []).map((t) => t.name));
  return names.every((n) => offered.has(n));
}

export function selectPolicy(routes: readonly PolicyRoute[], req: PolicyRequest): PolicyRoute | undefined {
  return routes.find((r) => r.matches(req));
}

/** Applies the request's `max_tokens`: an answer that does not fit is cut and ends with stop_reason `max_tokens`. */
export function fitToMaxTokens(turn: SimTurn, maxTokens: number): { turn: SimTurn; outputTokens: number } {
  const outputTokens = estimateOutputTokens(turn.content);
  if (outputTokens <= maxTokens) return { turn, outputTokens };
  // A cut tool_use would carry unusable input, so only the leading text survives.
  const text = turn.content.flatMap((b) => (b.type === "text" ? [b.text] : [])).join("\n");
  const cut = truncateToTokens(text, maxTokens);
  return { turn: { content: cut ? [{ type: "text", text: cut }] : [], stop_reason: "max_tokens" }, outputTokens: maxTokens };
}

export function textOf(content: RequestMessage["content"]): string {
  if (typeof content === "string") return content;
  return content.flatMap((b) => (b.type === "text" ? [b.text] : [])).join("\n");
}

export function firstUserText(messages: readonly RequestMessage[]): string {
  const first = messages.find((m) => m.role === "user");
  return first ? textOf(first.content) : "";
}

export function toolResultText(content: ToolResultContent): string {
  if (content === undefined) return "";
  if (typeof content === "string") return content;
  return content.flatMap((b) => (b.type === "text" ? [b.text] : [])).join("\n");
}

/** One tool call the model made earlier in the conversation, with the result the client returned. */
export interface PastToolCall {
  id: string;
  name: string;
  input: Record<string, unknown>;
  /** Index of the assistant message that made the call. */
  turn: number;
  result: { text: string; isError: boolean } | undefined;
}

export function pastToolCalls(messages: readonly RequestMessage[]): PastToolCall[] {
  const results = new Map<string, { text: string; isError: boolean }>();
  for (const msg of messages) {
    if (msg.role !== "user" || typeof msg.content === "string") continue;
    for (const b of msg.content)
      if (b.type === "tool_result") results.set(b.tool_use_id, { text: toolResultText(b.content), isError: b.is_error === true });
  }
  const calls: PastToolCall[] = [];
  messages.forEach((msg, turn) => {
    if (msg.role !== "assistant" || typeof msg.content === "string") return;
    for (const b of msg.content)
      if (b.type === "tool_use") calls.push({ id: b.id, name: b.name, input: b.input, turn, result: results.get(b.id) });
  });
  return calls;
}

/**
 * Tool-use ids derive from the position in the conversation (and its opening
 * message), so replaying a conversation yields the same ids while ids within one
 * conversation never repeat.
 */
export function toolUseId(req: PolicyRequest, blockIndex: number): string {
  const digest = createHash("sha256")
    .update(`${req.messages.length}:${blockIndex}:${firstUserText(req.messages)}`)
    .digest("hex");
  return `toolu_${digest.slice(0, 24)}`;
}

/** Builds a tool-use turn: a short reason first, then the calls. */
export function toolTurn(req: PolicyRequest, reason: string, calls: ReadonlyArray<{ name: string; input: Record<string, unknown> }>): SimTurn {
  return {
    content: [
      { type: "text", text: reason },
      ...calls.map((c, i): SimContentBlock => ({ type: "tool_use", id: toolUseId(req, i + 1), name: c.name, input: c.input })),
    ],
    stop_reason: "tool_use",
  };
}

export function textTurn(text: string): SimTurn {
  return { content: [{ type: "text", text }], stop_reason: "end_turn" };
}
