/**
 * The executor's view of one tool call: the `execute_tool {tool}` span (a child
 * of the model turn that asked for it, through the caller's trace context) and
 * the tool series. A tool that fails or gets bad input returns `ok: false`: the
 * span is marked failed with `error.type`; a thrown (infrastructure) error too.
 */
import { SpanKind } from "@opentelemetry/api";
import type { ToolCall, ToolResult } from "../contracts";
import { inputHash } from "./inputHash";
import type { Metrics } from "./metrics";
import { Attr, inSpan, markFailed } from "./spans";

/** `error.type` of a tool's own failure, from the registry's `{error: …}` output. */
function toolErrorType(output: unknown): { type: string; message: string | undefined } {
  const error = (output as { error?: unknown } | null)?.error;
  const message = typeof error === "string" ? error : undefined;
  if (message === "invalid input") return { type: "tool_input_error", message };
  if (message?.startsWith("unknown tool")) return { type: "tool_not_found", message };
  return { type: "tool_error", message };
}

function byteLength(output: unknown): number {
  if (output === undefined) return 0;
  return Buffer.byteLength(typeof output === "string" ? output : (JSON.stringify(output) ?? ""));
}

export function observeToolCall(metrics: Metrics, call: ToolCall, run: () => Promise<ToolResult>): Promise<ToolResult> {
  const labels = { agent: call.agent, prompt_version: call.promptVersion ?? "unknown" };
  const attributes = {
    [Attr.OPERATION]: "execute_tool",
    [Attr.TOOL_NAME]: call.tool,
    [Attr.TOOL_CALL_ID]: call.toolUseId,
    [Attr.TOOL_TYPE]: "function",
    [Attr.AGENT_NAME]: call.agent,
    [Attr.CONVERSATION_ID]: call.taskId,
    [Attr.TASK_ID]: call.taskId,
    [Attr.STEP]: call.step,
    [Attr.PROMPT_VERSION]: labels.prompt_version,
    [Attr.TOOL_INPUT_HASH]: inputHash(call.input),
    [Attr.TOOL_IDEMPOTENCY_KEY]: call.idempotencyKey,
  };
  return inSpan(`execute_tool ${call.tool}`, { kind: SpanKind.INTERNAL, attributes }, undefined, async (span) => {
    const started = performance.now();
    let result: ToolResult;
    try {
      result = await run();
    } catch (err) {
      metrics.toolCall(labels, call.tool, false, (performance.now() - started) / 1000);
      throw err;
    }
    metrics.toolCall(labels, call.tool, result.ok, result.duration_ms / 1000);
    span.setAttribute(Attr.TOOL_OUTPUT_BYTES, byteLength(result.output));
    if (!result.ok) {
      const e = toolErrorType(result.output);
      markFailed(span, e.type, e.message);
    }
    return result;
  });
}
