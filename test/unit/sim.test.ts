import Anthropic from "@anthropic-ai/sdk";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runSimCommand, parseSimArgs, RequestLog, startSimServer, type SimRequestRecord, type SimServer } from "../../src/sim";
import { routes as orderRouterPolicies } from "../../examples/order-router/sim/policies";
import { ConfigError } from "../../src/errors";
import { expectedRouting, findOrder, orderIds, warehousesIn, type Order } from "../../examples/order-router/lib/data";
import { orderRouterRegistry, type Queryable } from "../../testkit/orderRouter";

type Params = Anthropic.MessageCreateParamsNonStreaming;

/** `order_routes` in memory, answering just the statements OrderRoutes sends (the SQL itself is proven on PGlite in tools.test.ts). */
function memoryRoutesDb(): Queryable {
  const rows = new Map<string, { task_id: string; order_id: string; warehouse_id: string; confirmation: string; routed_at: Date }>();
  return {
    query: async (text, params = []) => {
      const [key = "", task_id = "", order_id = "", warehouse_id = "", confirmation = ""] = params as string[];
      if (text.trimStart().startsWith("INSERT")) {
        if (rows.has(key)) return { rows: [], rowCount: 0 };
        rows.set(key, { task_id, order_id, warehouse_id, confirmation, routed_at: new Date() });
        return { rows: [], rowCount: 1 };
      }
      if (text.includes("WHERE idempotency_key")) {
        const row = rows.get(key);
        return { rows: row ? [row] : [], rowCount: row ? 1 : 0 };
      }
      return { rows: [{ n: rows.size }], rowCount: 1 };
    },
  };
}

const registry = orderRouterRegistry(memoryRoutesDb());
const TOOLS = registry.specs(["lookup_order", "list_warehouses", "check_inventory", "route_order"]) as Anthropic.Tool[];
const SYSTEM = "You are the order-routing agent of a fulfilment network.";

function client(sim: SimServer, apiKey = "test"): Anthropic {
  return new Anthropic({ apiKey, baseURL: sim.url, maxRetries: 0 });
}

function request(over: Partial<Params> = {}): Params {
  return { model: "claude-sonnet-4-6", max_tokens: 1024, system: SYSTEM, messages: [{ role: "user", content: "hello there" }], ...over };
}

interface Played {
  answer: { order_id: string | null; routed: boolean; warehouse_id: string | null; reason: string };
  turns: Anthropic.Message[];
}

/** Plays the client side of the agent loop: runs every tool_use with the real tools and feeds the results back. */
async function play(c: Anthropic, input: string, taskId: string): Promise<Played> {
  const messages: Anthropic.MessageParam[] = [{ role: "user", content: input }];
  const turns: Anthropic.Message[] = [];
  for (let step = 0; step < 20; step++) {
    const msg = await c.messages.create({ model: "claude-sonnet-4-6", max_tokens: 2048, system: SYSTEM, tools: TOOLS, messages });
    turns.push(msg);
    messages.push({ role: "assistant", content: msg.content });
    if (msg.stop_reason !== "tool_use") {
      const text = msg.content.map((b) => (b.type === "text" ? b.text : "")).join("");
      return { answer: JSON.parse(text) as Played["answer"], turns };
    }
    const results: Anthropic.ToolResultBlockParam[] = [];
    for (const [i, block] of msg.content.entries()) {
      if (block.type !== "tool_use") continue;
      const toolStep = step * 10 + i;
      const res = await registry.run({
        taskId,
        agent: "order-router",
        step: toolStep,
        tool: block.name,
        toolUseId: block.id,
        input: block.input,
        idempotencyKey: `${taskId}:${toolStep}`,
      });
      results.push({ type: "tool_result", tool_use_id: block.id, content: JSON.stringify(res.output), ...(res.ok ? {} : { is_error: true }) });
    }
    messages.push({ role: "user", content: results });
  }
  throw new Error("conversation did not end");
}

const toolNames = (m: Anthropic.Message) => m.content.flatMap((b) => (b.type === "tool_use" ? [b.name] : []));

function orderRoutedAtRank(rank: number): string {
  const id = orderIds().find((x) => {
    const e = expectedRouting(x);
    return e.routed && warehousesIn((findOrder(x) as Order).region).findIndex((w) => w.warehouse_id === e.warehouse_id) === rank;
  });
  if (!id) throw new Error(`no order routed at rank ${rank}`);
  return id;
}

describe("simulated model - order-router policy", () => {
  let sim: SimServer;
  beforeAll(async () => {
    sim = await startSimServer({ policies: orderRouterPolicies });
  });
  afterAll(() => sim.close());

  const cases = [
    ["an order the nearest warehouse can fill is routed there", () => orderRoutedAtRank(0)],
    ["an order only the 2nd nearest warehouse can fill is routed there", () => orderRoutedAtRank(1)],
    ["an order only a warehouse beyond the first three can fill is routed there", () => orderRoutedAtRank(3)],
    ["an order no warehouse can fill is left unrouted", () => orderIds().find((x) => expectedRouting(x).reason === "no_warehouse_can_fill") as string],
    ["an unknown order is left unrouted", () => "ORD-99999"],
  ] as const;

  for (const [what, pick] of cases) {
    it(`order-router - ${what}, as expectedRouting says`, async () => {
      const id = pick();
      const { answer, turns } = await play(client(sim), JSON.stringify({ order_id: id }), `task-${id}`);
      const expected = expectedRouting(id);
      expect(answer).toMatchObject({ order_id: id, routed: expected.routed, warehouse_id: expected.warehouse_id });
      expect(answer.reason.length).toBeGreaterThan(5);
      expect(turns.at(-1)?.stop_reason).toBe("end_turn");
      const routeCalls = turns.flatMap(toolNames).filter((n) => n === "route_order");
      expect(routeCalls).toHaveLength(expected.routed ? 1 : 0);
      for (const t of turns.slice(0, -1)) expect(t.content[0]?.type).toBe("text");
    });
  }

  it("order-router - checks up to three warehouses in one turn and keeps tool-use ids unique", async () => {
    const id = orderRoutedAtRank(1);
    const { turns } = await play(client(sim), `Please route order ${id} today.`, "task-parallel");
    expect(turns.map(toolNames)).toEqual([["lookup_order"], ["list_warehouses"], ["check_inventory", "check_inventory", "check_inventory"], ["route_order"], []]);
    const ids = turns.flatMap((t) => t.content.flatMap((b) => (b.type === "tool_use" ? [b.id] : [])));
    expect(new Set(ids).size).toBe(ids.length);
    for (const tid of ids) expect(tid).toMatch(/^toolu_[0-9a-f]{24}$/);
  });

  it("order-router - replaying a conversation gives the same turns, tool-use ids included", async () => {
    const a = await play(client(sim), "ORD-1042", "task-replay");
    const b = await play(client(sim), "ORD-1042", "task-replay");
    expect(b.turns.map((t) => t.content)).toEqual(a.turns.map((t) => t.content));
  });

  it("order-router - input without an order id ends unrouted at once", async () => {
    const { answer, turns } = await play(client(sim), "please route my parcel", "task-none");
    expect(turns).toHaveLength(1);
    expect(answer).toMatchObject({ order_id: null, routed: false, warehouse_id: null });
  });

  it("order-router - a failing read-only tool is retried once, then the order is left unrouted", async () => {
    const c = client(sim);
    const messages: Anthropic.MessageParam[] = [{ role: "user", content: "ORD-1042" }];
    for (let i = 0; i < 2; i++) {
      const msg = await c.messages.create(request({ tools: TOOLS, messages }));
      expect(toolNames(msg)).toEqual(["lookup_order"]);
      const use = msg.content.find((b) => b.type === "tool_use") as Anthropic.ToolUseBlock;
      messages.push({ role: "assistant", content: msg.content });
      messages.push({ role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: '{"error":"upstream timeout"}', is_error: true }] });
    }
    const last = await c.messages.create(request({ tools: TOOLS, messages }));
    expect(last.stop_reason).toBe("end_turn");
    expect(JSON.parse((last.content[0] as Anthropic.TextBlock).text)).toMatchObject({ routed: false, reason: expect.stringContaining("upstream timeout") });
  });

  it("order-router - too small a max_tokens stops with max_tokens and a cut text", async () => {
    const msg = await client(sim).messages.create(request({ tools: TOOLS, max_tokens: 8, messages: [{ role: "user", content: "ORD-1042" }] }));
    expect(msg.stop_reason).toBe("max_tokens");
    expect(msg.usage.output_tokens).toBe(8);
    expect(msg.content).toEqual([{ type: "text", text: "Looking up order ORD-1042 to find its region and items.".slice(0, 32) }]);
  });
});

describe("simulated model - API surface", () => {
  let sim: SimServer;
  beforeAll(async () => {
    sim = await startSimServer({ apiKey: "sk-sim", maxBodyBytes: 64 * 1024 });
  });
  afterAll(() => sim.close());

  it("api - a message carries id, usage and a request-id header", async () => {
    const { data, response } = await client(sim, "sk-sim").messages.create(request()).withResponse();
    expect(data).toMatchObject({ type: "message", role: "assistant", model: "claude-sonnet-4-6", stop_reason: "end_turn", stop_sequence: null });
    expect(data.id).toMatch(/^msg_/);
    expect(data.content[0]).toMatchObject({ type: "text", text: expect.stringContaining("hello there") });
    expect(data.usage).toMatchObject({ cache_read_input_tokens: 0, cache_creation_input_tokens: 0 });
    expect(data.usage.input_tokens).toBeGreaterThan(0);
    expect(response.headers.get("request-id")).toMatch(/^req_/);
  });

  it("api - count_tokens agrees with the input tokens a message is billed", async () => {
    const c = client(sim, "sk-sim");
    const params = request({ tools: TOOLS, messages: [{ role: "user", content: "ORD-1042" }] });
    const counted = await c.messages.countTokens({ model: params.model, system: params.system, tools: params.tools, messages: params.messages });
    const msg = await c.messages.create(params);
    expect(counted.input_tokens).toBe(msg.usage.input_tokens);
  });

  it("api - a missing field is a BadRequestError worded like the API", async () => {
    const err = await client(sim, "sk-sim")
      .messages.create({ model: "claude-sonnet-4-6", messages: [{ role: "user", content: "hi" }] } as Params)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    const e = err as InstanceType<typeof Anthropic.BadRequestError>;
    expect(e.status).toBe(400);
    expect(e.error).toEqual({ type: "error", error: { type: "invalid_request_error", message: "max_tokens: Field required" } });
    expect(e.requestID).toMatch(/^req_/);
  });

  it("api - a tool_result without its tool_use in the previous turn is refused", async () => {
    const err = await client(sim, "sk-sim")
      .messages.create(request({ messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_x", content: "{}" }] }] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect((err as Error).message).toContain("unexpected `tool_use_id`");
  });

  it("api - a wrong x-api-key is an AuthenticationError", async () => {
    const err = await client(sim, "wrong").messages.create(request()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((err as InstanceType<typeof Anthropic.AuthenticationError>).error).toMatchObject({ error: { type: "authentication_error" } });
  });

  it("api - malformed JSON, an unknown path and an oversized body answer the API's error bodies", async () => {
    const post = (path: string, body: string) => fetch(`${sim.url}${path}`, { method: "POST", headers: { "x-api-key": "sk-sim", "content-type": "application/json" }, body });
    const bad = await post("/v1/messages", "{not json");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });

    const missing = await fetch(`${sim.url}/v1/nothing-here`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("request-id")).toMatch(/^req_/);
    expect(await missing.json()).toEqual({ type: "error", error: { type: "not_found_error", message: "Not found: GET /v1/nothing-here" } });

    const huge = await post("/v1/messages", JSON.stringify(request({ messages: [{ role: "user", content: "x".repeat(100_000) }] })));
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ type: "error", error: { type: "request_too_large" } });
  });

  it("api - /_sim/stats counts requests, models, statuses and tool uses; /_sim/reset zeroes them", async () => {
    sim.reset();
    const c = client(sim, "sk-sim");
    await c.messages.create(request({ tools: TOOLS, messages: [{ role: "user", content: "ORD-1042" }] }));
    await c.messages.create(request({ max_tokens: 0 })).catch(() => undefined);
    const stats = (await (await fetch(`${sim.url}/_sim/stats`)).json()) as ReturnType<SimServer["stats"]>;
    expect(stats).toEqual(sim.stats());
    expect(stats).toMatchObject({ requests: 2, by_model: { "claude-sonnet-4-6": 1 }, responses_by_status: { "200": 1, "400": 1 }, tool_uses: { lookup_order: 1 } });
    expect(stats.input_tokens).toBeGreaterThan(0);
    expect(stats.output_tokens).toBeGreaterThan(0);
    expect((await fetch(`${sim.url}/_sim/reset`, { method: "POST" })).status).toBe(200);
    expect(sim.stats()).toEqual({ requests: 0, by_model: {}, responses_by_status: {}, tool_uses: {}, input_tokens: 0, output_tokens: 0 });
  });
});

describe("simulated model - rate limits", () => {
  const servers: SimServer[] = [];
  const start = async (opts: Parameters<typeof startSimServer>[0]) => {
    const s = await startSimServer(opts);
    servers.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it("limits - past the requests per window a RateLimitError carries retry-after and the ratelimit headers, and the bucket refills", async () => {
    const sim = await start({ requestsPerMinute: 2, limitWindowMs: 1000 });
    const c = client(sim);
    const { response } = await c.messages.create(request()).withResponse();
    expect(response.headers.get("anthropic-ratelimit-requests-limit")).toBe("2");
    expect(response.headers.get("anthropic-ratelimit-requests-remaining")).toBe("1");
    expect(Date.parse(response.headers.get("anthropic-ratelimit-requests-reset") ?? "")).toBeGreaterThan(Date.now() - 1000);
    await c.messages.create(request());

    const err = await c.messages.create(request()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const e = err as InstanceType<typeof Anthropic.RateLimitError>;
    expect(e.status).toBe(429);
    expect(e.error).toMatchObject({ type: "error", error: { type: "rate_limit_error" } });
    expect(e.headers.get("retry-after")).toBe("1");
    expect(e.headers.get("anthropic-ratelimit-requests-remaining")).toBe("0");
    expect(e.headers.get("anthropic-ratelimit-requests-reset")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    const waitMs = Number(e.headers.get("retry-after-ms"));
    expect(waitMs).toBeGreaterThan(0);
    expect(waitMs).toBeLessThanOrEqual(500);

    await new Promise((r) => setTimeout(r, waitMs + 5));
    await expect(c.messages.create(request())).resolves.toMatchObject({ type: "message" });
  });

  it("limits - output tokens are charged from max_tokens and refunded to actual usage", async () => {
    const sim = await start({ outputTokensPerMinute: 100 });
    const c = client(sim);
    const { data, response } = await c.messages.create(request({ max_tokens: 100 })).withResponse();
    expect(Number(response.headers.get("anthropic-ratelimit-output-tokens-remaining"))).toBe(100 - data.usage.output_tokens);
    await expect(c.messages.create(request({ max_tokens: 80 }))).resolves.toMatchObject({ type: "message" });
    const err = await c.messages.create(request({ max_tokens: 100 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
  });

  it("limits - input tokens per window refuse a conversation that does not fit", async () => {
    const sim = await start({ inputTokensPerMinute: 50 });
    const err = await client(sim)
      .messages.create(request({ messages: [{ role: "user", content: "y".repeat(400) }] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect((err as InstanceType<typeof Anthropic.RateLimitError>).headers.get("anthropic-ratelimit-input-tokens-limit")).toBe("50");
  });

  it("limits - each model has its own buckets", async () => {
    const sim = await start({ requestsPerMinute: 1 });
    const c = client(sim);
    await c.messages.create(request({ model: "claude-haiku-4-5" }));
    await expect(c.messages.create(request({ model: "claude-sonnet-4-6" }))).resolves.toMatchObject({ type: "message" });
    await expect(c.messages.create(request({ model: "claude-haiku-4-5" }))).rejects.toBeInstanceOf(Anthropic.RateLimitError);
  });

  it("failures - the failure pattern is fixed by the seed and answers 529 or 500", async () => {
    const outcomes = async (seed: number) => {
      const sim = await start({ failureRate: 0.4, seed });
      const c = client(sim);
      const seen: number[] = [];
      for (let i = 0; i < 24; i++) seen.push(await c.messages.create(request()).then(() => 200, (e: InstanceType<typeof Anthropic.APIError>) => e.status ?? 0));
      return seen;
    };
    const a = await outcomes(7);
    expect(await outcomes(7)).toEqual(a);
    expect(await outcomes(8)).not.toEqual(a);
    expect(a).toContain(200);
    expect(a.filter((s) => s === 529 || s === 500).length).toBeGreaterThan(3);
    expect(a.every((s) => [200, 500, 529].includes(s))).toBe(true);
  });

  it("failures - an injected 529 is the SDK's OverloadedError", async () => {
    const sim = await start({ failureRate: 1, seed: 3 });
    const errors = await Promise.all([0, 1, 2, 3, 4, 5].map(() => client(sim).messages.create(request()).catch((e: unknown) => e)));
    const overloaded = errors.find((e) => e instanceof Anthropic.APIError && e.status === 529) as InstanceType<typeof Anthropic.APIError>;
    expect(overloaded).toBeDefined();
    expect(overloaded.error).toMatchObject({ type: "error", error: { type: "overloaded_error" } });
  });

  it("latency - answers wait the configured latency", async () => {
    const sim = await start({ latencyMs: 60 });
    const t0 = performance.now();
    await client(sim).messages.create(request());
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
  });
});

describe("simulated model - command line", () => {
  it("cli - bad flags are refused with the flag named", () => {
    expect(() => parseSimArgs(["--port", "http"])).toThrow(ConfigError);
    expect(() => parseSimArgs(["--port", "http"])).toThrow(/--port: expected an integer between 0 and 65535/);
    expect(() => parseSimArgs(["--failure-rate", "1.5"])).toThrow(/--failure-rate/);
    expect(() => parseSimArgs(["--bogus"])).toThrow(/Unknown option '--bogus'/);
    expect(parseSimArgs(["--port", "0", "--rpm", "50", "--failure-rate", "0.1"])).toEqual({ port: 0, requestsPerMinute: 50, failureRate: 0.1 });
  });

  it("cli - a port already in use is refused with the flag named", async () => {
    const taken = await startSimServer({});
    try {
      await expect(runSimCommand(["--port", String(taken.port)], { out: () => undefined })).rejects.toThrow(/--port: port \d+ is already in use/);
    } finally {
      await taken.close();
    }
  });

  it("cli - prints where it listens, serves, and stops when told", async () => {
    const lines: string[] = [];
    const stop = new AbortController();
    const running = runSimCommand(["--port", "0", "--api-key", "k"], { out: (l) => lines.push(l), signal: stop.signal });
    await expect.poll(() => lines.length).toBe(2);
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(lines[0] ?? "")?.[1] as string;
    expect(lines[0]).toMatch(/^simulated Anthropic model listening on http:\/\/127\.0\.0\.1:\d+$/);
    expect(lines[1]).toBe("policies: generic for every other agent");
    const msg = await new Anthropic({ apiKey: "k", baseURL: url, maxRetries: 0 }).messages.create(request());
    expect(msg.type).toBe("message");
    stop.abort();
    await running;
    await expect(fetch(`${url}/_sim/stats`)).rejects.toThrow();
  });
});

describe("simulated model - request log", () => {
  it("requests - /_sim/requests lists each call's task, model and loop step, oldest first; bounded; /_sim/reset clears it", async () => {
    const sim = await startSimServer({});
    try {
      const c = client(sim);
      const before = Date.now();
      await c.messages.create(request({ metadata: { user_id: "task-a" } }));
      // Step 4 of task-a: one model turn that asked for two tools, and both tool results.
      const use = (id: string): Anthropic.ToolUseBlockParam => ({ type: "tool_use", id, name: "lookup_order", input: { order_id: "ORD-1042" } });
      const result = (id: string): Anthropic.ToolResultBlockParam => ({ type: "tool_result", tool_use_id: id, content: "{}" });
      await c.messages.create(
        request({
          metadata: { user_id: "task-a" },
          tools: TOOLS,
          messages: [
            { role: "user", content: "route ORD-1042" },
            { role: "assistant", content: [{ type: "text", text: "Looking it up." }, use("toolu_1"), use("toolu_2")] },
            { role: "user", content: [result("toolu_1"), result("toolu_2")] },
          ],
        }),
      );
      await c.messages.create(request({ model: "claude-haiku-4-5" }));
      await c.messages.create(request({ max_tokens: 0 })).catch(() => undefined); // invalid: not a model call
      const after = Date.now();

      const log = (await (await fetch(`${sim.url}/_sim/requests`)).json()) as SimRequestRecord[];
      expect(log).toEqual(sim.requests());
      expect(log.map(({ user_id, model, turn, tools }) => ({ user_id, model, turn, tools }))).toEqual([
        { user_id: "task-a", model: "claude-sonnet-4-6", turn: 1, tools: 0 },
        { user_id: "task-a", model: "claude-sonnet-4-6", turn: 4, tools: TOOLS.length },
        { user_id: null, model: "claude-haiku-4-5", turn: 1, tools: 0 },
      ]);
      for (const r of log) expect(r.at).toBeGreaterThanOrEqual(before);
      for (const r of log) expect(r.at).toBeLessThanOrEqual(after);
      expect(log.map((r) => r.at)).toEqual([...log.map((r) => r.at)].sort((a, b) => a - b));

      expect((await fetch(`${sim.url}/_sim/reset`, { method: "POST" })).status).toBe(200);
      expect(await (await fetch(`${sim.url}/_sim/requests`)).json()).toEqual([]);
    } finally {
      await sim.close();
    }

    const bounded = new RequestLog(3);
    for (let turn = 1; turn <= 5; turn++) {
      bounded.record({ model: "m", max_tokens: 1, messages: [{ role: "user", content: "x" }], metadata: { user_id: `t${turn}` } }, turn);
    }
    expect(bounded.snapshot().map((r) => r.user_id)).toEqual(["t3", "t4", "t5"]);
  });
});
