/**
 * A streamed model call (an agent with `stream: true`): the same request as the
 * plain one, read through the SDK's message stream, each text delta told to a
 * publisher as it arrives. The message the SDK assembles from the stream is then
 * handled exactly as the plain answer is (same mapping, usage and rate-limit
 * headers), so the checkpoint cannot tell the two apart. A stream cut mid-way
 * rejects like any failed request; the deltas it already sent are superseded by
 * the retried call's, and by the step that checkpoints the answer.
 */
import type Anthropic from "@anthropic-ai/sdk";
import type { CompleteRequest, TextDeltaEvent } from "../contracts";

/** Where a streamed call's text deltas go (the gateway broadcasts them to the api replicas). */
export type DeltaPublisher = (delta: TextDeltaEvent) => void;

/** Told each text delta of one call: the content block it extends and the text. */
export type TextSink = (block: number, text: string) => void;

/**
 * The text sink of one call of `req`: numbers its deltas from 0 and names the task, its tenant and the step.
 * A fresh one per attempt, so a retried call starts again at 0.
 */
export function textDeltas(req: CompleteRequest, tenant: string, publish: DeltaPublisher): TextSink {
  let index = 0;
  return (block, text) => publish({ task_id: req.taskId, tenant, step: req.step, index: index++, block, text });
}

/** Sends `params` as a streamed request and answers the assembled message with the HTTP response (for its headers). */
export async function streamMessage(
  client: Anthropic,
  params: Anthropic.MessageCreateParamsNonStreaming,
  signal: AbortSignal | undefined,
  onText: TextSink,
): Promise<{ data: Anthropic.Message; response: Response }> {
  const stream = client.messages.stream(params, signal ? { signal } : undefined);
  stream.on("streamEvent", (event) => {
    if (event.type === "content_block_delta" && event.delta.type === "text_delta") onText(event.index, event.delta.text);
  });
  const data = await stream.finalMessage();
  const { response } = await stream.withResponse();
  return { data, response };
}
