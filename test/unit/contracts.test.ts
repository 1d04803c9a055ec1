/**
 * contracts - the OpenAPI document is generated from the schemas that validate
 * the REST API, and the answers the API builds fit the schemas it publishes.
 */
import { afterAll, describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";
import { stepView, taskView } from "../../src/api/views";
import {
  emptyUsage,
  LiveReportSchema,
  ReadyReportSchema,
  StepsViewSchema,
  StepViewSchema,
  SubmitTaskSchema,
  TaskViewSchema,
  type StepRecord,
  type TaskRecord,
} from "../../src/contracts";
import { openApiDocument, type OpenApiOperation } from "../../src/contracts/openapi";
import { V1_ROUTES } from "../../src/api/routes";
import { Health, type CheckResult, type LiveReport } from "../../src/health/health";
import { Gateway, parseCallParams } from "../../src/contracts";
import { ValidationError } from "../../src/errors";

const doc = openApiDocument();

/** Every /v1 route the gateway serves, and the unauthenticated ones beside them: the document has exactly these. */
const ROUTES = [
  ...V1_ROUTES.map((r) => `${r.method.toLowerCase()} /v1${r.path.replace(/:(\w+)/g, "{$1}")}`),
  "get /health/live",
  "get /health/ready",
  "get /metrics",
  "get /openapi.json",
];

function operations(): Array<[string, OpenApiOperation]> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]): [string, OpenApiOperation] => [`${method} ${path}`, op]),
  );
}

/** Every `$ref` in `value`, with where it was found. */
function refs(value: unknown, at = "#"): Array<{ at: string; ref: string }> {
  if (Array.isArray(value)) return value.flatMap((v, i) => refs(v, `${at}/${i}`));
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => (k === "$ref" && typeof v === "string" ? [{ at, ref: v }] : refs(v, `${at}/${k}`)));
}

function resolve(ref: string): unknown {
  return ref
    .replace(/^#\//, "")
    .split("/")
    .reduce<unknown>((node, key) => (typeof node === "object" && node !== null ? (node as Record<string, unknown>)[key] : undefined), doc);
}

describe("contracts - OpenAPI document", () => {
  it("is an OpenAPI 3.1 document with one operation per REST route", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.title).toBe("Clawfleet");
    expect(doc.info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(operations().map(([route]) => route).sort()).toEqual([...ROUTES].sort());
    const ids = operations().map(([, op]) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("gives every operation its responses, and every path parameter a declaration", () => {
    for (const [route, op] of operations()) {
      expect(Object.keys(op.responses).length, route).toBeGreaterThan(0);
      for (const [status, response] of Object.entries(op.responses)) {
        expect(status, route).toMatch(/^[1-5]\d\d$/);
        expect(response.description, `${route} ${status}`).not.toBe("");
      }
      const templated = [...route.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      const declared = (op.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name);
      expect(declared, route).toEqual(templated);
      for (const p of op.parameters ?? []) if (p.in === "path") expect(p.required, route).toBe(true);
    }
  });

  it("names, for every /v1 route, the scope the gateway demands, and asks no key of health and metrics", () => {
    for (const r of V1_ROUTES) {
      const route = `${r.method.toLowerCase()} /v1${r.path.replace(/:(\w+)/g, "{$1}")}`;
      const op = operations().find(([name]) => name === route)?.[1];
      expect(op?.["x-clawfleet-scope"], route).toBe(r.scope);
      expect(Object.keys(op?.responses ?? {}), route).toEqual(expect.arrayContaining(["401", "403"]));
    }
    expect(doc.security).toEqual([{ bearer: [] }]);
    for (const route of ["get /health/live", "get /health/ready", "get /metrics", "get /openapi.json"]) expect(operations().find(([name]) => name === route)?.[1].security).toEqual([]);
  });

  it("resolves every $ref inside the document", () => {
    const found = refs(doc);
    expect(found.length).toBeGreaterThan(0);
    for (const { at, ref } of found) {
      expect(ref, at).toMatch(/^#\/components\/schemas\//);
      expect(resolve(ref), `${at} -> ${ref}`).toBeTypeOf("object");
    }
  });

  it("is plain JSON with no JSON Schema dialect of its own on the components", () => {
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
    for (const schema of Object.values(doc.components.schemas)) expect(schema).not.toHaveProperty("$schema");
  });

  it("publishes the submit body that intake validates: agent, input, priority, metadata, budgets, webhook", () => {
    const post = doc.paths["/v1/tasks"]?.post;
    expect(post?.requestBody?.content["application/json"]?.schema).toEqual({ $ref: "#/components/schemas/SubmitTask" });
    const submit = doc.components.schemas.SubmitTask;
    expect(Object.keys(submit?.properties as object)).toEqual(["agent", "input", "priority", "metadata", "budgets", "webhook"]);
    expect(Object.keys(submit?.properties as object)).toEqual(Object.keys(SubmitTaskSchema.shape));
    expect(submit?.required).toEqual(["agent", "input"]);
    expect(submit?.additionalProperties).toBe(false);
    const { $schema: _, ...derived } = z.toJSONSchema(SubmitTaskSchema, { io: "input" });
    expect(submit).toEqual(derived);
  });
});

describe("contracts - the API's answers fit the published schemas", () => {
  const task: TaskRecord = {
    id: "0b7c6f7e-6a0e-4d8e-9d55-0a3f2b1c9e01",
    agent: "order-router",
    status: "succeeded",
    input: "route ORD-1042",
    priority: "normal",
    metadata: { source: "test" },
    result: { warehouse: "WH-3" },
    error: null,
    attempts: 1,
    steps: 2,
    usage: { input_tokens: 120, output_tokens: 30, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cost_usd: 0.00081 },
    prompt_version: "pv-1",
    fence: 1,
    created_at: "2025-01-01T00:00:00.000Z",
    started_at: "2025-01-01T00:00:01.000Z",
    finished_at: "2025-01-01T00:00:09.000Z",
    wakeup_at: "2025-01-01T00:00:00.000Z",
    trace_context: null,
    tenant: "default",
  };
  const stored = { task_id: task.id, schema_version: 1, fence: 1, created_at: "2025-01-01T00:00:02.000Z" };
  const steps: StepRecord[] = [
    {
      ...stored,
      step: 1,
      kind: "llm",
      data: {
        model: "claude-sim",
        tier: "fast",
        stop_reason: "tool_use",
        usage: { ...emptyUsage(), input_tokens: 120, output_tokens: 30, cost_usd: 0.00081 },
        content: [{ type: "tool_use", id: "toolu_1", name: "route_order", input: { order_id: "ORD-1042" } }],
        duration_ms: 40,
      },
    },
    {
      ...stored,
      step: 2,
      kind: "tool",
      data: { tool: "route_order", tool_use_id: "toolu_1", input: { order_id: "ORD-1042" }, output: { warehouse: "WH-3" }, ok: true, duration_ms: 3, idempotency_key: `${task.id}:2` },
    },
  ];

  it("GET /v1/tasks/{id} and its steps", () => {
    expect(TaskViewSchema.parse(taskView(task, steps))).toEqual(taskView(task, steps));
    expect(() => TaskViewSchema.parse(taskView(task))).not.toThrow();
    for (const s of steps) expect(StepViewSchema.parse(stepView(s))).toEqual(stepView(s));
    expect(() => StepsViewSchema.parse({ id: task.id, status: task.status, steps: steps.map(stepView) })).not.toThrow();
  });

  const health = new Health(["api"]);
  afterAll(() => health.close());

  it("GET /health/live and /health/ready", () => {
    expectTypeOf<z.output<typeof LiveReportSchema>>().toEqualTypeOf<LiveReport>();
    expectTypeOf<z.output<typeof ReadyReportSchema>["checks"][string]>().toEqualTypeOf<CheckResult>();
    expect(() => LiveReportSchema.parse(health.live())).not.toThrow();
    const ready = health.ready();
    expect(() => ReadyReportSchema.parse({ status: ready.ready ? "ready" : "not_ready", checks: ready.checks })).not.toThrow();
  });
});

describe("contracts - a model call's params from another process", () => {
  const call = {
    taskId: "0b7a6c1e-3f0a-4d8e-9c1b-2a3b4c5d6e7f",
    agent: "order-router",
    promptVersion: "v1",
    step: 3,
    tier: "default",
    model: "claude-sonnet-5-5",
    maxTokens: 1024,
    priority: "normal",
    system: "You route orders.",
    tools: [],
  };
  /** The message of the ValidationError `rate-gateway.complete` answers these messages with. */
  const refusal = (messages: unknown[]): string => {
    try {
      parseCallParams(Gateway.complete, { ...call, messages }, "rate-gateway.complete");
    } catch (err) {
      if (err instanceof ValidationError) return err.message;
      throw err;
    }
    throw new Error("accepted");
  };
  const ask = { role: "user", content: 'Route order {"order_id":"ORD-1042"}' };

  it("takes a conversation of every kind of block", () => {
    const messages = [
      ask,
      {
        role: "assistant",
        content: [
          { type: "thinking", thinking: "The order first.", signature: "sig" },
          { type: "redacted_thinking", data: "abc" },
          { type: "text", text: "Looking it up." },
          { type: "tool_use", id: "toolu_1", name: "lookup_order", input: { order_id: "ORD-1042" } },
        ],
      },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "{}", is_error: false }, { type: "text", text: "go on" }] },
    ];
    expect(parseCallParams(Gateway.complete, { ...call, messages }, "rate-gateway.complete").messages).toEqual(messages);
  });

  it("names the field at fault inside a block, and a block type or role the Messages API does not have", () => {
    expect(refusal([ask, { role: "assistant", content: [{ type: "tool_use", name: "lookup_order", input: {} }] }])).toBe(
      'rate-gateway.complete: field "messages.1.content.0.id": Invalid input: expected string, received undefined',
    );
    expect(refusal([ask, { role: "assistant", content: [{ type: "image", url: "x" }] }])).toMatch(
      /^rate-gateway\.complete: field "messages\.1\.content\.0\.type": .*'text' \| 'tool_use' \| 'thinking' \| 'redacted_thinking'/,
    );
    expect(refusal([{ role: "user", content: [{ type: "tool_result", content: "{}" }] }])).toMatch(/^rate-gateway\.complete: field "messages\.0\.content/);
    expect(refusal([{ role: "system", content: "hi" }])).toMatch(/^rate-gateway\.complete: field "messages\.0\.role": .*'user' \| 'assistant'/);
  });
});
