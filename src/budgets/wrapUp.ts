/**
 * The wrap-up turn of `on_exhausted: finish`: one last model call, offered no
 * tools, told that the budget is spent and that it must answer now.
 *
 * The Messages API refuses a request whose conversation holds `tool_use` or
 * `tool_result` blocks but defines no tools, so the wrap-up's copy of the
 * conversation carries them as text: what was called with what, and what came
 * back. The checkpointed conversation is left as it is.
 */
import type { BudgetName, ContentBlock, MessageParam, UserBlock } from "../contracts";

const WHAT: Record<BudgetName, string> = {
  max_steps: "step",
  max_tokens: "token",
  max_input_tokens: "input-token",
  max_output_tokens: "output-token",
  max_cost_usd: "cost",
  max_wall_seconds: "time",
};

export function wrapUpInstruction(budget: BudgetName): string {
  return (
    `The ${WHAT[budget]} budget for this task is spent: no more tools can be called. ` +
    "Answer now, in the format you were asked for, with what you have found so far, and say what is left undone."
  );
}

/** The conversation for the wrap-up turn: tool blocks as text, the instruction last. */
export function wrapUpMessages(messages: readonly MessageParam[], budget: BudgetName): MessageParam[] {
  const names = new Map<string, string>();
  const out: MessageParam[] = messages.map((m): MessageParam => {
    if (m.role === "assistant") {
      return {
        role: "assistant",
        content: m.content.map((b): ContentBlock => {
          if (b.type !== "tool_use") return b;
          names.set(b.id, b.name);
          return { type: "text", text: `[called tool ${b.name} with input ${JSON.stringify(b.input ?? null)}]` };
        }),
      };
    }
    if (typeof m.content === "string") return m;
    return {
      role: "user",
      content: m.content.map((b): UserBlock => {
        if (b.type !== "tool_result") return b;
        const name = names.get(b.tool_use_id) ?? "a tool";
        return { type: "text", text: `[${name} ${b.is_error ? "failed" : "answered"}: ${b.content}]` };
      }),
    };
  });
  const instruction: UserBlock = { type: "text", text: wrapUpInstruction(budget) };
  const last = out.at(-1);
  if (last?.role === "user") {
    const blocks: UserBlock[] = typeof last.content === "string" ? [{ type: "text", text: last.content }] : last.content;
    out[out.length - 1] = { role: "user", content: [...blocks, instruction] };
  } else {
    out.push({ role: "user", content: [instruction] });
  }
  return out;
}
