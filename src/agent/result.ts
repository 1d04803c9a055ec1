import type { ContentBlock } from "../contracts";

export function finalText(content: readonly ContentBlock[]): string {
  return content
    .filter((b): b is Extract<ContentBlock, { type: "text" }> => b.type === "text")
    .map((b) => b.text)
    .join("\n")
    .trim();
}

/**
 * The task's result from the model's final answer. A `json` agent's answer is
 * parsed (the first balanced object in the text, since models sometimes wrap it
 * in prose or a code fence); when it does not parse, the text is kept so nothing
 * the model said is lost.
 */
export function buildResult(content: readonly ContentBlock[], format: "text" | "json"): unknown {
  const text = finalText(content);
  if (format === "text") return { text };
  const parsed = extractJsonObject(text);
  return parsed === undefined ? { text, parse_error: "the final answer holds no JSON object" } : parsed;
}

export function extractJsonObject(text: string): Record<string, unknown> | undefined {
  for (let start = text.indexOf("{"); start !== -1; start = text.indexOf("{", start + 1)) {
    let depth = 0;
    let inString = false;
    let escaped = false;
    for (let i = start; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === "\\") escaped = true;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === "{") depth++;
      else if (c === "}" && --depth === 0) {
        try {
          const v: unknown = JSON.parse(text.slice(start, i + 1));
          if (v !== null && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
        } catch {
          // not JSON after all; try the next opening brace
        }
        break;
      }
    }
  }
  return undefined;
}
