/** The content blocks of a simulated assistant turn: what policies answer and what the token estimates count. */
export type SimContentBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> };
