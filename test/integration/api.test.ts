/**
 * api - the REST contract on a real embedded node (moleculer-web, PGlite in
 * memory): status codes, the one error body, idempotency keys, and that no
 * input a client can send produces a 500.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KEEP_ALIVE_TIMEOUT_MS } from "../../src/api/http";
import { loadConfig } from "../../src/config";
import { startNode, type ClawfleetNode } from "../../app/node";
import { ORDER_ROUTER_PROMPTS } from "../../testkit/examples";
import { uniqueId } from "../helpers/services";

let node: ClawfleetNode;
let base: string;

beforeAll(async () => {
  const config = loadConfig({
    CLAWFLEET_PROMPTS_DIR: ORDER_ROUTER_PROMPTS,
    PORT: "0",
    CLAWFLEET_DATA_DIR: "memory://",
    CLAWFLEET_NAMESPACE: uniqueId("api"),
    LOG_LEVEL: "error",
  });
  node = await startNode(config);
  base = `http://127.0.0.1:${node.port}`;
}, 60_000);

afterAll(async () => {
  await node?.stop();
});

async function post(body: string | Buffer, headers: Record<string, string> = { "Content-Type": "application/json" }) {
  const r = await fetch(`${base}/v1/tasks`, { method: "POST", headers, body });
  const text = await r.text();
  let json: { id?: string; status?: string; error?: { type: string; message: string; details?: Record<string, unknown> } } = {};
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    // asserted by callers through `text`
  }
  return { status: r.status, json, text, headers: r.headers };
}

const valid = { agent: "order-router", input: { order_id: "ORD-1001" } };

describe("api - submitting tasks", () => {
  it("answers 202 with the id, status queued and a Location header", async () => {
    const r = await post(JSON.stringify(valid));
    expect(r.status).toBe(202);
    expect(r.json).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: "queued" });
    expect(r.headers.get("location")).toBe(`/v1/tasks/${r.json.id}`);
  });

  it("answers the same id for the same Idempotency-Key and a new one for another key", async () => {
    const key = `order-${randomUUID()}`;
    const a = await post(JSON.stringify(valid), { "Content-Type": "application/json", "Idempotency-Key": key });
    const b = await post(JSON.stringify({ ...valid, input: "something else" }), { "Content-Type": "application/json", "Idempotency-Key": key });
    const c = await post(JSON.stringify(valid), { "Content-Type": "application/json", "Idempotency-Key": `${key}-2` });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.json.id).toBe(a.json.id);
    expect(c.json.id).not.toBe(a.json.id);
  });

  it("rejects malformed JSON with 400 malformed_request", async () => {
    const r = await post('{"agent": "order-router", "input": ');
    expect(r.status).toBe(400);
    expect(r.json.error?.type).toBe("malformed_request");
  });

  it("rejects a body that is not sent as JSON with 400", async () => {
    const r = await post("agent=order-router", { "Content-Type": "text/plain" });
    expect(r.status).toBe(400);
    expect(r.json.error?.type).toBe("malformed_request");
  });

  it("rejects a body over 1 MiB with 413 payload_too_large", async () => {
    const big = JSON.stringify({ agent: "order-router", input: "x".repeat(1024 * 1024 + 10) });
    const r = await post(big);
    expect(r.status).toBe(413);
    expect(r.json.error?.type).toBe("payload_too_large");
  });

  it.each([
    ["a missing agent", { input: "hi" }, "agent"],
    ["a missing input", { agent: "order-router" }, "input"],
    ["an input of the wrong type", { agent: "order-router", input: 42 }, "input"],
    ["an unknown priority", { ...valid, priority: "urgent" }, "priority"],
    ["metadata that is not an object", { ...valid, metadata: [1, 2] }, "metadata"],
    ["an agent name with spaces", { agent: "order router", input: "x" }, "agent"],
  ])("rejects %s with 422 naming the field", async (_what, body, field) => {
    const r = await post(JSON.stringify(body));
    expect(r.status).toBe(422);
    expect(r.json.error?.type).toBe("validation_error");
    expect(r.json.error?.details?.field).toBe(field);
  });

  it("rejects unknown top-level fields with 422 naming them", async () => {
    const r = await post(JSON.stringify({ ...valid, colour: "red" }));
    expect(r.status).toBe(422);
    expect(r.json.error?.message).toContain("colour");
  });

  it.each([
    ["an array", "[1,2,3]"],
    ["a string", '"route ORD-1"'],
    ["null", "null"],
  ])("rejects %s as the body with 422 field body", async (_what, body) => {
    const r = await post(body);
    expect(r.status).toBe(422);
    expect(r.json.error?.details?.field).toBe("body");
  });

  it("treats an empty body as an empty object: 422 naming the first missing field", async () => {
    const r = await post("");
    expect(r.status).toBe(422);
    expect(r.json.error?.details?.field).toBe("agent");
  });

  it("rejects an Idempotency-Key that is too long with 422", async () => {
    const r = await post(JSON.stringify(valid), { "Content-Type": "application/json", "Idempotency-Key": "k".repeat(300) });
    expect(r.status).toBe(422);
    expect(r.json.error?.details?.field).toBeUndefined();
    expect(r.json.error?.message).toContain("Idempotency-Key");
  });

  it("answers 404 agent_not_found for an unknown agent", async () => {
    const r = await post(JSON.stringify({ agent: "no-such-agent", input: "x" }));
    expect(r.status).toBe(404);
    expect(r.json.error?.type).toBe("agent_not_found");
  });

  it("answers an unknown agent's 404 without listing the agents there are", async () => {
    const r = await post(JSON.stringify({ agent: "no-such-agent", input: "x" }));
    expect(r.status).toBe(404);
    expect(r.json.error?.details).not.toHaveProperty("known");
    expect(r.text).not.toContain("order-router");
  });

  const nested = (depth: number): string => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
  it.each([
    ["a NUL in an input string", JSON.stringify({ ...valid, input: "a\u0000b" }), "input"],
    ["a NUL in a nested input value", JSON.stringify({ ...valid, input: { order: ["x", { note: "a\u0000b" }] } }), "input.order.1.note"],
    ["a NUL in an input key", JSON.stringify({ ...valid, input: { "k\u0000": 1 } }), "input"],
    ["a lone surrogate in input", JSON.stringify({ ...valid, input: "\ud800" }), "input"],
    ["a NUL in a metadata value", JSON.stringify({ ...valid, metadata: { note: "a\u0000b" } }), "metadata.note"],
    ["a lone surrogate in a metadata key", JSON.stringify({ ...valid, metadata: { "\udc00": "v" } }), "metadata"],
    ["input nested 8,000 levels deep", `{"agent": "order-router", "input": ${nested(8000)}}`, "input"],
    ["metadata nested 100 levels deep", `{"agent": "order-router", "input": "x", "metadata": ${nested(100)}}`, "metadata"],
  ])("rejects %s with 422 validation_error naming the field", async (_what, body, field) => {
    const r = await post(body);
    expect(r.status, r.text.slice(0, 300)).toBe(422);
    expect(r.json.error?.type).toBe("validation_error");
    expect(String(r.json.error?.details?.field)).toMatch(new RegExp(`^${field.replace(/\./g, "\\.")}`));
    expect(r.json.error?.message).toContain(field.split(".")[0]);
    expect(r.text).not.toMatch(/SQLSTATE|portal/i);
  });

  it("accepts input nested 60 levels deep and non-ASCII text", async () => {
    const r = await post(`{"agent": "order-router", "input": ${nested(60)}, "metadata": {"note": "caf\u00e9 \ud83d\ude00"}}`);
    expect(r.status, r.text.slice(0, 300)).toBe(202);
  });

  it("never answers 500 to odd but well-formed JSON", async () => {
    const deep = `${"[".repeat(5000)}${"]".repeat(5000)}`;
    const bodies = [
      "{}",
      "0",
      "true",
      '{"agent": null, "input": null}',
      '{"agent": "order-router", "input": {"a": {"b": {"c": [1, {"d": null}]}}}}',
      `{"agent": "order-router", "input": ${deep}}`,
      '{"__proto__": {"polluted": true}, "agent": "order-router", "input": "x"}',
      '{"agent": "\\u0000", "input": "x"}',
      JSON.stringify({ agent: "order-router", input: "x", metadata: { k: "v".repeat(1000) } }),
    ];
    for (const b of bodies) {
      const r = await post(b);
      expect(r.status, b.slice(0, 80)).toBeLessThan(500);
      expect(r.json.error ?? r.json.id, b.slice(0, 80)).toBeDefined();
    }
  });
});

describe("api - connections", () => {
  it("keeps an idle connection open longer than clients and load balancers do, so that it is never closed under a request", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const get = () =>
        new Promise<{ status: number; keepAlive: string | string[] | undefined; socket: unknown }>((resolve, reject) => {
          const req = http.get(`${base}/health/live`, { agent }, (res) => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode ?? 0, keepAlive: res.headers["keep-alive"], socket: req.socket }));
          });
          req.on("error", reject);
        });
      const first = await get();
      expect(first).toMatchObject({ status: 200, keepAlive: `timeout=${KEEP_ALIVE_TIMEOUT_MS / 1000}` });
      // The same connection answers the next request.
      expect((await get()).socket).toBe(first.socket);
    } finally {
      agent.destroy();
    }
  });
});

describe("api - reading tasks", () => {
  it("returns the task with every contract field", async () => {
    const { json } = await post(JSON.stringify({ ...valid, priority: "high", metadata: { source: "test" } }));
    const r = await fetch(`${base}/v1/tasks/${json.id}`);
    expect(r.status).toBe(200);
    const t = (await r.json()) as Record<string, unknown>;
    for (const k of ["id", "agent", "status", "input", "result", "error", "attempts", "steps", "usage", "prompt_version", "created_at", "started_at", "finished_at"]) {
      expect(t, k).toHaveProperty(k);
    }
    expect(t.usage).toMatchObject({ input_tokens: expect.any(Number), output_tokens: expect.any(Number), cost_usd: expect.any(Number) });
    expect(t.input).toEqual(valid.input);
  });

  it("answers 404 task_not_found for an unknown id and for a malformed one", async () => {
    for (const id of [randomUUID(), "not-a-uuid", "%00", "x".repeat(500)]) {
      const r = await fetch(`${base}/v1/tasks/${encodeURIComponent(id)}`);
      expect(r.status, id).toBe(404);
      expect(((await r.json()) as { error: { type: string } }).error.type).toBe("task_not_found");
      const s = await fetch(`${base}/v1/tasks/${encodeURIComponent(id)}/steps`);
      expect(s.status).toBe(404);
    }
  });

  it("accepts an upper-case task id in task routes", async () => {
    const { json } = await post(JSON.stringify(valid));
    const id = String(json.id).toUpperCase();
    const r = await fetch(`${base}/v1/tasks/${id}`);
    expect(r.status).toBe(200);
    expect(((await r.json()) as { id: string }).id).toBe(json.id);
    const s = await fetch(`${base}/v1/tasks/${id}/steps`);
    expect(s.status).toBe(200);
  });

  it("answers redrive with 404 task_not_found for an unknown task and 409 task_not_failed for a task that is not failed", async () => {
    const unknown = await fetch(`${base}/v1/tasks/${randomUUID()}/redrive`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { type: string } }).error.type).toBe("task_not_found");
    const { json } = await post(JSON.stringify(valid));
    const notFailed = await fetch(`${base}/v1/tasks/${json.id}/redrive`, { method: "POST" });
    expect(notFailed.status).toBe(409);
    expect(((await notFailed.json()) as { error: { type: string } }).error.type).toBe("task_not_failed");
  });

  it("answers 404 with a JSON error for an unknown route", async () => {
    const r = await fetch(`${base}/v1/nothing-here`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: { type: string } }).error.type).toBe("not_found");
  });
});

describe("api - health and metrics", () => {
  it("answers live and ready once every role has started", async () => {
    expect((await fetch(`${base}/health/live`)).status).toBe(200);
    const ready = await fetch(`${base}/health/ready`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { status: string }).status).toBe("ready");
  });

  it("serves Prometheus text with the task gauges", async () => {
    const r = await fetch(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/plain");
    expect(await r.text()).toMatch(/clawfleet_tasks\{[^}]*status="queued"/);
  });
});
