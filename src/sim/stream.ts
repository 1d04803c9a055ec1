/**
 * The simulated model's answer to `stream: true`: the same message the plain
 * request would get, sent as the Messages API's server-sent events
 * (message_start, content_block_start, content_block_delta, content_block_stop,
 * message_delta, message_stop). Text is cut into several `text_delta`s and a
 * tool call's input into several `input_json_delta`s; the configured latency is
 * spread across them, so the first delta comes early and the last one at about
 * the time the plain answer would have come.
 */
import type http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { SimContentBlock } from "./types";

/** The assistant message as the plain request answers it. */
export interface SimMessage {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: SimContentBlock[];
  stop_reason: string;
  stop_sequence: null;
  usage: { input_tokens: number; output_tokens: number; cache_read_input_tokens: number; cache_creation_input_tokens: number };
}

/** What the server sends for a request that asked for a stream: the message and the latency to spread over it. */
export class StreamedAnswer {
  constructor(
    readonly message: SimMessage,
    readonly latencyMs: number,
  ) {}
}

interface SseEvent {
  type: string;
  [field: string]: unknown;
}

/** Words per text delta: several deltas for a sentence, not one per character. */
const WORDS_PER_DELTA = 3;
/** Characters of a tool call's JSON input per delta. */
const JSON_CHARS_PER_DELTA = 24;

/** `text` in pieces of a few words each (whitespace kept with the word before it); joined, they are `text`. */
export function textPieces(text: string): string[] {
  const words = text.match(/\S+\s*|\s+/g) ?? [];
  const pieces: string[] = [];
  for (let i = 0; i < words.length; i += WORDS_PER_DELTA) pieces.push(words.slice(i, i + WORDS_PER_DELTA).join(""));
  return pieces;
}

function jsonPieces(json: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < json.length; i += JSON_CHARS_PER_DELTA) pieces.push(json.slice(i, i + JSON_CHARS_PER_DELTA));
  return pieces;
}

/** The events of `message`, in order, as the Messages API streams them. */
export function streamEvents(message: SimMessage): SseEvent[] {
  const { content, stop_reason, stop_sequence, usage, ...head } = message;
  const events: SseEvent[] = [
    // The output count so far: none yet. message_delta carries the whole count.
    { type: "message_start", message: { ...head, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 0 } } },
    { type: "ping" },
  ];
  content.forEach((block, index) => {
    if (block.type === "text") {
      events.push({ type: "content_block_start", index, content_block: { type: "text", text: "" } });
      for (const text of textPieces(block.text)) events.push({ type: "content_block_delta", index, delta: { type: "text_delta", text } });
    } else {
      events.push({ type: "content_block_start", index, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } });
      for (const partial_json of jsonPieces(JSON.stringify(block.input))) events.push({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json } });
    }
    events.push({ type: "content_block_stop", index });
  });
  events.push({ type: "message_delta", delta: { stop_reason, stop_sequence }, usage: { output_tokens: usage.output_tokens } });
  events.push({ type: "message_stop" });
  return events;
}

/**
 * Writes `answer` on `res` as `text/event-stream`, waiting a share of its latency before each delta and
 * before the closing message_delta. Stops when the client hangs up; `shutdown` aborting rejects (the
 * server is closing and destroys the socket).
 */
export async function writeStream(res: http.ServerResponse, headers: Record<string, string>, answer: StreamedAnswer, shutdown: AbortSignal): Promise<void> {
  const events = streamEvents(answer.message);
  const waits = events.filter((e) => e.type === "content_block_delta" || e.type === "message_delta").length;
  const pause = waits > 0 ? answer.latencyMs / waits : 0;
  res.writeHead(200, { ...headers, "content-type": "text/event-stream", "cache-control": "no-cache" });
  for (const event of events) {
    if (pause > 0 && (event.type === "content_block_delta" || event.type === "message_delta")) await sleep(pause, undefined, { signal: shutdown });
    if (res.destroyed) return;
    res.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  }
  res.end();
}
