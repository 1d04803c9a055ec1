/**
 * sim stream - the simulated model's `stream: true` answers, read by the official SDK: the message the SDK
 * assembles from the events is the plain request's answer (content, stop reason, usage); text and tool input
 * come in several deltas, the latency spread across them; rate limits and injected failures are answered
 * as errors before any stream starts.
 */
import Anthropic from "@anthropic-ai/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { startSimServer, type SimServer, type SimOptions } from "../../src/sim";

const LOOKUP: Anthropic.Tool = {
  name: "lookup_order",
  description: "Looks an order up.",
  input_schema: { type: "object", properties: { order_id: { type: "string" }, lines: { type: "array", items: { type: "string" } } }, required: ["order_id", "lines"] },
};
const USER = "please route the order that came in this morning, the one with the three blue crates";

function params(tools: Anthropic.Tool[] = []): Anthropic.MessageCreateParamsNonStreaming {
  return { model: "claude-haiku-4-5", max_tokens: 1024, system: "You route orders.", messages: [{ role: "user", content: USER }], ...(tools.length > 0 ? { tools } : {}) };
}

/** What the API answers of a message, but its id (new for every request); the SDK adds fields of its own to a streamed one. */
function comparable(m: Anthropic.Message) {
  return { type: m.type, role: m.role, model: m.model, content: m.content, stop_reason: m.stop_reason, stop_sequence: m.stop_sequence, usage: m.usage };
}

describe("sim stream - stream: true through the official SDK", () => {
  let sim: SimServer | undefined;
  const start = async (opts: SimOptions = {}) => {
    sim = await startSimServer(opts);
    return new Anthropic({ apiKey: "test", baseURL: sim.url, maxRetries: 0 });
  };
  afterEach(async () => {
    await sim?.close();
    sim = undefined;
  });

  it("a text turn: several text deltas, and the assembled message equals the plain answer, usage included", async () => {
    const client = await start();
    const plain = await client.messages.create(params());
    const stream = client.messages.stream(params());
    const deltas: string[] = [];
    stream.on("text", (delta) => void deltas.push(delta));
    const streamed = await stream.finalMessage();

    expect(comparable(streamed)).toEqual(comparable(plain));
    expect(plain.usage.output_tokens).toBeGreaterThan(0);
    expect(deltas.length).toBeGreaterThanOrEqual(2);
    expect(deltas.join("")).toBe((plain.content[0] as Anthropic.TextBlock).text);
  });

  it("a tool_use turn: input_json deltas rebuild the input; content, stop_reason and usage equal the plain answer", async () => {
    const client = await start();
    const plain = await client.messages.create(params([LOOKUP]));
    expect(plain.stop_reason).toBe("tool_use");
    const stream = client.messages.stream(params([LOOKUP]));
    const partials: string[] = [];
    stream.on("inputJson", (partial) => void partials.push(partial));
    const streamed = await stream.finalMessage();

    expect(comparable(streamed)).toEqual(comparable(plain));
    const use = streamed.content.find((b): b is Anthropic.ToolUseBlock => b.type === "tool_use");
    expect(partials.length).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(partials.join(""))).toEqual(use?.input);
  });

  it("create({stream: true}) yields the Messages API's events in their order", async () => {
    const client = await start();
    const types: string[] = [];
    let usage: Anthropic.MessageDeltaUsage | undefined;
    for await (const event of await client.messages.create({ ...params([LOOKUP]), stream: true })) {
      types.push(event.type);
      if (event.type === "message_delta") usage = event.usage;
    }
    const plain = await client.messages.create(params([LOOKUP]));
    const blocks = plain.content.length;
    expect(types[0]).toBe("message_start");
    expect(types.slice(-2)).toEqual(["message_delta", "message_stop"]);
    expect(types.filter((t) => t === "content_block_start")).toHaveLength(blocks);
    expect(types.filter((t) => t === "content_block_stop")).toHaveLength(blocks);
    expect(types.filter((t) => t === "content_block_delta").length).toBeGreaterThanOrEqual(2 * blocks);
    expect(usage?.output_tokens).toBe(plain.usage.output_tokens);
  });

  it("the latency is spread across the deltas: the first comes well before the end", async () => {
    const latencyMs = 600;
    const client = await start({ latencyMs });
    const began = performance.now();
    const stream = client.messages.stream(params());
    let first: number | undefined;
    stream.on("text", () => void (first ??= performance.now()));
    await stream.finalMessage();
    const ended = performance.now();
    expect(first).toBeDefined();
    // Lower bounds only: what follows the first delta sleeps at least the rest of the latency.
    expect(ended - (first ?? ended)).toBeGreaterThanOrEqual(latencyMs / 3);
    expect(ended - began).toBeGreaterThanOrEqual(latencyMs * 0.9);
  });

  it("a rate-limited stream request is a 429 with retry-after before any event", async () => {
    const client = await start({ requestsPerMinute: 1 });
    await client.messages.stream(params()).finalMessage();
    const err = await client.messages
      .stream(params())
      .finalMessage()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect((err as InstanceType<typeof Anthropic.RateLimitError>).headers.get("retry-after")).toMatch(/^\d+$/);
  });

  it("an injected failure is an error status before any event, as without streaming", async () => {
    const client = await start({ failureRate: 1 });
    const stream = client.messages.stream(params());
    let events = 0;
    stream.on("streamEvent", () => void events++);
    const err = await stream.finalMessage().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect([500, 529]).toContain((err as InstanceType<typeof Anthropic.APIError>).status);
    expect(events).toBe(0);
  });
});
