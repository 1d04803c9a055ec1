/**
 * Token estimates: a deterministic ~4 characters per token. Input and output use
 * the same rule so the counts, the rate-limit charges and `count_tokens` agree.
 */
import type { CountTokensRequest } from "./request";
import type { SimContentBlock } from "./types";

const CHARS_PER_TOKEN = 4;

export function tokensForChars(chars: number): number {
  return Math.max(1, Math.ceil(chars / CHARS_PER_TOKEN));
}

export function estimateInputTokens(req: Pick<CountTokensRequest, "system" | "messages" | "tools">): number {
  const system = req.system === undefined ? "" : typeof req.system === "string" ? req.system : JSON.stringify(req.system);
  const tools = req.tools === undefined ? "" : JSON.stringify(req.tools);
  return tokensForChars(system.length + JSON.stringify(req.messages).length + tools.length);
}

export function contentChars(content: readonly SimContentBlock[]): number {
  let chars = 0;
  // A policy is user code and may leave a field out; what it answered is counted, never a crash.
  const text = (v: unknown) => (typeof v === "string" ? v.length : 0);
  for (const block of content) {
    const b = block as Partial<Record<"text" | "name" | "input", unknown>> & { type: string };
    chars += b.type === "text" ? text(b.text) : text(b.name) + (JSON.stringify(b.input) ?? "").length;
  }
  return chars;
}

export function estimateOutputTokens(content: readonly SimContentBlock[]): number {
  return tokensForChars(contentChars(content));
}

/** The longest prefix of `text` that fits in `tokens`. */
export function truncateToTokens(text: string, tokens: number): string {
  return text.slice(0, tokens * CHARS_PER_TOKEN);
}
