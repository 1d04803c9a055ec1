/**
 * The simulated model for any agent: tool inputs generated from JSON Schema
 * (checked by a real validator), the generic policy over the official SDK, and
 * scripted policies plugged in from outside the source tree.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { loadConfig, loadSimConfig } from "../../src/config";
import { ConfigError } from "../../src/errors";
import { genericPolicy, inputFromSchema, loadSimPolicies, samplePattern, startSimServer, valueFromSchema, type PolicyRequest, type SimServer } from "../../src/sim";
import { ORDER_ROUTER_SIM_POLICIES } from "../../testkit/examples";

const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
const accepts = (schema: object, value: unknown): boolean => {
  const validate = ajv.compile(schema);
  const ok = validate(value);
  if (!ok) throw new Error(`${JSON.stringify(value)} rejected: ${ajv.errorsText(validate.errors)}`);
  return ok;
};

describe("simulated model - inputs from JSON Schema", () => {
  const types: Array<[string, object]> = [
    ["string", { type: "string" }],
    ["integer", { type: "integer" }],
    ["number", { type: "number" }],
    ["boolean", { type: "boolean" }],
    ["null", { type: "null" }],
    ["object", { type: "object" }],
    ["array", { type: "array" }],
    ["nullable string (type list)", { type: ["null", "string"] }],
    ["untyped (any)", {}],
  ];
  for (const [what, schema] of types) {
    it(`schema input - a ${what} schema yields a valid value`, () => {
      expect(accepts(schema, valueFromSchema(schema))).toBe(true);
    });
  }

  it("schema input - an object gets its required properties only, nested objects and arrays included", () => {
    const schema = {
      type: "object",
      properties: {
        order: {
          type: "object",
          properties: { id: { type: "string" }, lines: { type: "array", items: { type: "object", properties: { sku: { type: "string" }, qty: { type: "integer", minimum: 1 } }, required: ["sku", "qty"] } } },
          required: ["id", "lines"],
        },
        note: { type: "string" },
      },
      required: ["order"],
      additionalProperties: false,
    };
    const v = inputFromSchema(schema);
    expect(v).toEqual({ order: { id: "example", lines: [{ sku: "example", qty: 1 }] } });
    expect(accepts(schema, v)).toBe(true);
  });

  it("schema input - const, then default, then examples[0], then enum[0] are taken first", () => {
    expect(valueFromSchema({ type: "string", const: "c", default: "d", examples: ["e"], enum: ["f"] })).toBe("c");
    expect(valueFromSchema({ type: "string", default: "d", examples: ["e"], enum: ["f", "d"] })).toBe("d");
    expect(valueFromSchema({ type: "string", examples: ["e", "x"], enum: ["f", "e"] })).toBe("e");
    expect(valueFromSchema({ type: "string", enum: ["f", "g"] })).toBe("f");
    expect(valueFromSchema({ type: "integer", enum: [3, 4] })).toBe(3);
    expect(valueFromSchema({ type: "string", example: "openapi" })).toBe("openapi");
    const withDefault = { type: "object", properties: { mode: { type: "string", enum: ["fast", "slow"], default: "slow" } }, required: ["mode"] };
    expect(inputFromSchema(withDefault)).toEqual({ mode: "slow" });
  });

  const formats = ["date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uri", "uri-reference", "uri-template", "uuid", "json-pointer", "relative-json-pointer", "regex", "byte"];
  for (const format of formats) {
    it(`schema input - format ${format} yields a valid string`, () => {
      expect(accepts({ type: "string", format }, valueFromSchema({ type: "string", format }))).toBe(true);
    });
  }

  it("schema input - patterns, lengths and ranges are kept", () => {
    const cases: object[] = [
      { type: "string", pattern: "^ORD-\\d+$" },
      { type: "string", pattern: "^[A-Z]{3}-[0-9]{2,4}(\\.[a-z]+)?$" },
      { type: "string", pattern: "^(?:red|green)-(?<n>\\d{3})$" },
      { type: "string", pattern: "^[^a-z]+$" },
      { type: "string", pattern: "^\\w+@\\w+\\.com$" },
      { type: "string", minLength: 12 },
      { type: "string", maxLength: 3 },
      { type: "integer", minimum: 10, maximum: 20 },
      { type: "integer", maximum: -5 },
      { type: "integer", exclusiveMinimum: 7 },
      { type: "number", exclusiveMaximum: 0 },
      { type: "number", minimum: 0.25, maximum: 0.5 },
      { type: "integer", minimum: 3, multipleOf: 5 },
      { type: "number", multipleOf: 0.5, minimum: 2.1 },
      { type: "array", items: { type: "integer" }, minItems: 3, uniqueItems: true },
      { type: "array", maxItems: 0 },
      { type: "array", prefixItems: [{ type: "string" }, { type: "boolean" }], items: false },
      { type: "object", minProperties: 2, properties: { a: { type: "string" }, b: { type: "number" } } },
    ];
    for (const schema of cases) expect(accepts(schema, valueFromSchema(schema))).toBe(true);
    expect(valueFromSchema({ type: "string", pattern: "^ORD-\\d+$" })).toBe("ORD-1");
  });

  it("schema input - a pattern beyond the sampler falls back instead of guessing wrong", () => {
    expect(samplePattern("^(a)\\1$")).toBeUndefined();
    expect(samplePattern("(?=x)")).toBeUndefined();
    expect(samplePattern("[")).toBeUndefined();
  });

  it("schema input - $ref, allOf, anyOf and oneOf are resolved, recursion is bounded", () => {
    const schema = {
      type: "object",
      $defs: {
        Money: { type: "object", properties: { amount: { type: "number", minimum: 0 }, currency: { enum: ["EUR", "USD"] } }, required: ["amount", "currency"] },
        Node: { type: "object", properties: { children: { type: "array", items: { $ref: "#/$defs/Node" } } }, required: ["children"] },
      },
      properties: {
        price: { $ref: "#/$defs/Money" },
        when: { anyOf: [{ type: "null" }, { type: "string", format: "date" }] },
        kind: { oneOf: [{ const: "a" }, { const: "b" }] },
        both: { allOf: [{ type: "object", properties: { x: { type: "integer" } }, required: ["x"] }, { properties: { y: { type: "boolean" } }, required: ["y"] }] },
        tree: { $ref: "#/$defs/Node" },
      },
      required: ["price", "when", "kind", "both", "tree"],
    };
    const v = inputFromSchema(schema);
    expect(v).toMatchObject({ price: { amount: 1, currency: "EUR" }, when: "2025-01-01", kind: "a", both: { x: 1, y: true } });
    expect(accepts(schema, v)).toBe(true);
  });

  it("schema input - the JSON Schema zod writes for a tool is satisfied", () => {
    const input = z.object({
      order_id: z.string().regex(/^ORD-\d+$/),
      items: z.array(z.object({ sku: z.string().min(1).max(64), quantity: z.number().int().min(1).max(1000) })).min(1).max(50),
      priority: z.enum(["high", "normal", "low"]).optional(),
      note: z.string().nullable(),
      at: z.iso.datetime(),
    });
    const schema = z.toJSONSchema(input) as object;
    const v = inputFromSchema(schema);
    expect(input.safeParse(v).success).toBe(true);
    expect(accepts(schema, v)).toBe(true);
    expect(v).not.toHaveProperty("priority");
  });

  it("schema input - a tool schema that yields no object gives {}", () => {
    expect(inputFromSchema({ type: "string" })).toEqual({});
    expect(inputFromSchema(undefined)).toEqual({});
  });
});

const TOOLS: Anthropic.Tool[] = [
  { name: "search", description: "s", input_schema: { type: "object", properties: { query: { type: "string", examples: ["shoes"] }, limit: { type: "integer", minimum: 1, default: 10 } }, required: ["query"] } },
  { name: "fetch_page", description: "f", input_schema: { type: "object", properties: { url: { type: "string", format: "uri" } }, required: ["url"] } },
  { name: "notify", description: "n", input_schema: { type: "object", properties: {} } },
];

describe("simulated model - generic policy", () => {
  let sim: SimServer;
  let client: Anthropic;
  beforeAll(async () => {
    sim = await startSimServer({});
    client = new Anthropic({ apiKey: "k", baseURL: sim.url, maxRetries: 0 });
  });
  afterAll(() => sim.close());

  /** Plays the client: answers each tool_use with `result(name, input)`. */
  async function play(tools: Anthropic.Tool[], result: (name: string, input: unknown) => { text: string; isError?: boolean }) {
    const messages: Anthropic.MessageParam[] = [{ role: "user", content: "Find me running shoes." }];
    const turns: Anthropic.Message[] = [];
    for (let i = 0; i < 10; i++) {
      const msg = await client.messages.create({ model: "claude-sonnet-4-6", max_tokens: 1024, tools, messages });
      turns.push(msg);
      messages.push({ role: "assistant", content: msg.content });
      if (msg.stop_reason !== "tool_use") return { turns, messages };
      const uses = msg.content.filter((b): b is Anthropic.ToolUseBlock => b.type === "tool_use");
      messages.push({
        role: "user",
        content: uses.map((u) => {
          const r = result(u.name, u.input);
          return { type: "tool_result" as const, tool_use_id: u.id, content: r.text, ...(r.isError ? { is_error: true } : {}) };
        }),
      });
    }
    throw new Error("conversation did not end");
  }

  it("generic - calls each offered tool once, one per turn, in the order offered, then quotes the last result", async () => {
    const { turns } = await play(TOOLS, (name) => ({ text: JSON.stringify({ tool: name, ok: true }) }));
    const calls = turns.map((t) => t.content.flatMap((b) => (b.type === "tool_use" ? [b.name] : [])));
    expect(calls).toEqual([["search"], ["fetch_page"], ["notify"], []]);
    const inputs = turns.flatMap((t) => t.content.flatMap((b) => (b.type === "tool_use" ? [b.input] : [])));
    expect(inputs).toEqual([{ query: "shoes" }, { url: "https://example.com/" }, {}]);
    const last = turns.at(-1) as Anthropic.Message;
    expect(last.stop_reason).toBe("end_turn");
    const text = last.content.map((b) => (b.type === "text" ? b.text : "")).join("");
    expect(text).toContain('{"tool":"notify","ok":true}');
    expect(text).toContain("notify");
  });

  it("generic - a failing tool is not called again; the answer says the last one failed", async () => {
    const { turns } = await play(TOOLS.slice(0, 2), (name) => (name === "fetch_page" ? { text: "upstream 503", isError: true } : { text: "3 hits" }));
    expect(turns).toHaveLength(3);
    const text = (turns.at(-1) as Anthropic.Message).content.map((b) => (b.type === "text" ? b.text : "")).join("");
    expect(text).toMatch(/fetch_page, failed: "upstream 503"/);
  });

  it("generic - a request without tools gets a text answer at once", async () => {
    const msg = await client.messages.create({ model: "claude-sonnet-4-6", max_tokens: 256, messages: [{ role: "user", content: "hello there" }] });
    expect(msg.stop_reason).toBe("end_turn");
    expect(msg.content).toEqual([{ type: "text", text: 'This is the simulated model. You said: "hello there"' }]);
  });

  it("generic - a replayed conversation gets the same turn, tool-use id included (resume)", () => {
    const req: PolicyRequest = { model: "m", max_tokens: 100, messages: [{ role: "user", content: "go" }], tools: TOOLS.map((t) => ({ ...t, input_schema: { ...t.input_schema } })) };
    expect(genericPolicy(req)).toEqual(genericPolicy(structuredClone(req)));
  });
});

describe("simulated model - scripted policies from outside", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sim-policies-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it("plugins - a module's routes answer their agent; every other agent gets the generic policy", async () => {
    const file = write(
      "echo.cjs",
      `exports.routes = [{ name: "echo", matches: (req) => (req.tools || []).some((t) => t.name === "echo"),
         policy: () => ({ content: [{ type: "text", text: "scripted" }], stop_reason: "end_turn" }) }];`,
    );
    const policies = await loadSimPolicies([file]);
    expect(policies.map((p) => p.name)).toEqual(["echo"]);
    const sim = await startSimServer({ policies });
    try {
      const c = new Anthropic({ apiKey: "k", baseURL: sim.url, maxRetries: 0 });
      const tool = (name: string): Anthropic.Tool => ({ name, input_schema: { type: "object" } });
      const scripted = await c.messages.create({ model: "m", max_tokens: 100, tools: [tool("echo")], messages: [{ role: "user", content: "x" }] });
      expect(scripted.content).toEqual([{ type: "text", text: "scripted" }]);
      const other = await c.messages.create({ model: "m", max_tokens: 100, tools: [tool("other")], messages: [{ role: "user", content: "x" }] });
      expect(other.content.find((b) => b.type === "tool_use")).toMatchObject({ name: "other", input: {} });
    } finally {
      await sim.close();
    }
  });

  it("plugins - the order-router example's TypeScript module loads (default export and ES modules too)", async () => {
    const ts = await loadSimPolicies([ORDER_ROUTER_SIM_POLICIES]);
    expect(ts.map((p) => p.name)).toEqual(["order-router", "order-router-classify"]);
    const asDefault = write("default.cjs", `module.exports = { default: [{ name: "d", matches: () => false, policy: () => null }] };`);
    const esm = write("esm.mjs", `export const routes = [{ name: "e", matches: () => false, policy: () => null }];`);
    expect((await loadSimPolicies([asDefault, esm])).map((p) => p.name)).toEqual(["d", "e"]);
  });

  it("plugins - a module without routes, or one that does not load, is a ConfigError naming the setting", async () => {
    const none = write("none.cjs", "exports.policy = () => null;");
    await expect(loadSimPolicies([none], "--policies")).rejects.toThrow(/--policies: .*none\.cjs must export `routes`/);
    const badRoute = write("bad.cjs", 'exports.routes = [{ name: "x", matches: true, policy: () => null }];');
    await expect(loadSimPolicies([badRoute])).rejects.toThrow(/CLAWFLEET_SIM_POLICIES: .*routes\.0\.matches/);
    await expect(loadSimPolicies([path.join(dir, "missing.js")])).rejects.toBeInstanceOf(ConfigError);
  });

  it("plugins - CLAWFLEET_SIM_POLICIES is a path list resolved from the working directory", () => {
    expect(loadConfig({}).sim.policies).toEqual([]);
    expect(loadSimConfig({ CLAWFLEET_SIM_POLICIES: `a.js${path.delimiter} /abs/b.ts` }, "/proj").policies).toEqual(["/proj/a.js", "/abs/b.ts"]);
    expect(loadConfig({ CLAWFLEET_SIM_POLICIES: "p.js" }, "/proj").sim.policies).toEqual(["/proj/p.js"]);
    // The sim command reads only its own settings: an incomplete distributed setup does not stop it.
    expect(loadSimConfig({ TRANSPORTER: "nats://x:4222" }).policies).toEqual([]);
  });
});
