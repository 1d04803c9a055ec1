/**
 * openapi - the document served at /openapi.json against what the routes
 * really answer. Every operation in it has cases here (a new route without
 * them fails the coverage check), every case's status must be one the
 * operation documents, and every JSON answer, errors included, must validate
 * against the schema documented for that status.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import Ajv2020 from "ajv/dist/2020";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { loadConfig } from "../../src/config";
import type { OpenApiDocument } from "../../src/contracts/openapi";
import { bearer, issueTestKey, TEST_ADMIN_KEY } from "../../testkit/auth";
import { EXAMPLES_ENV } from "../../testkit/examples";
import { uniqueId } from "../helpers/services";

interface Answer {
  status: number;
  contentType: string;
  body: unknown;
}

interface Case {
  /** The operation: `<method> <path template>` as the document names it. */
  op: string;
  name: string;
  run(): Promise<Answer>;
}

let node: ClawfleetNode;
let base: string;
let doc: OpenApiDocument;
const keys = { full: "", readOnly: "", otherTenant: "", operator: "" };
let succeededTask = "";

async function request(method: string, path: string, opts: { key?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(opts.key ? bearer(opts.key) : {}), ...(opts.headers ?? {}) };
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined && headers["Content-Type"] === undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await r.text();
  const contentType = (r.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
  let parsed: unknown = text;
  if (contentType === "application/json") parsed = JSON.parse(text) as unknown;
  return { status: r.status, contentType, body: parsed };
}

async function waitForStatus(id: string, statuses: readonly string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await request("GET", `/v1/tasks/${id}`, { key: keys.full });
    if (statuses.includes((r.body as { status?: string }).status ?? "")) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`task ${id} did not reach ${statuses.join("|")}`);
}

const submit = (key: string, body: unknown = { agent: "order-router", input: { order_id: "ORD-1042" } }) => request("POST", "/v1/tasks", { key, body });

/** The order-router agent file with its instruction reworded: a version of its own. */
function canaryText(): string {
  const text = fs.readFileSync(path.join(EXAMPLES_ENV.CLAWFLEET_PROMPTS_DIR ?? "", "order-router.md"), "utf8");
  return `${text.trimEnd()}\nBe brief.\n`;
}

/** The cases, by operation. An operation of the document with none fails the coverage check. */
function cases(): Case[] {
  const unknownTask = randomUUID();
  return [
    { op: "post /v1/tasks", name: "202 queued", run: () => submit(keys.full) },
    { op: "post /v1/tasks", name: "400 malformed JSON", run: () => request("POST", "/v1/tasks", { key: keys.full, raw: '{"agent": ' }) },
    { op: "post /v1/tasks", name: "401 without a key", run: () => request("POST", "/v1/tasks", { body: { agent: "order-router", input: "x" } }) },
    { op: "post /v1/tasks", name: "403 with a read-only key", run: () => submit(keys.readOnly) },
    { op: "post /v1/tasks", name: "404 unknown agent", run: () => submit(keys.full, { agent: "no-such-agent", input: "x" }) },
    { op: "post /v1/tasks", name: "413 body over 1 MiB", run: () => submit(keys.full, { agent: "order-router", input: "x".repeat(1024 * 1024 + 10) }) },
    { op: "post /v1/tasks", name: "422 bad priority", run: () => submit(keys.full, { agent: "order-router", input: "x", priority: "urgent" }) },
    { op: "get /v1/tasks/{id}", name: "200 a finished task", run: () => request("GET", `/v1/tasks/${succeededTask}`, { key: keys.full }) },
    { op: "get /v1/tasks/{id}", name: "401 without a key", run: () => request("GET", `/v1/tasks/${succeededTask}`) },
    { op: "get /v1/tasks/{id}", name: "404 unknown task", run: () => request("GET", `/v1/tasks/${unknownTask}`, { key: keys.full }) },
    { op: "get /v1/tasks/{id}", name: "404 another tenant's task", run: () => request("GET", `/v1/tasks/${succeededTask}`, { key: keys.otherTenant }) },
    { op: "get /v1/tasks/{id}/steps", name: "200 the steps", run: () => request("GET", `/v1/tasks/${succeededTask}/steps`, { key: keys.full }) },
    { op: "get /v1/tasks/{id}/steps", name: "200 a page of steps", run: () => request("GET", `/v1/tasks/${succeededTask}/steps?after=1&limit=1`, { key: keys.full }) },
    { op: "get /v1/tasks/{id}/steps", name: "422 a limit over 1000", run: () => request("GET", `/v1/tasks/${succeededTask}/steps?limit=1001`, { key: keys.full }) },
    { op: "get /v1/tasks/{id}/steps", name: "404 unknown task", run: () => request("GET", `/v1/tasks/${unknownTask}/steps`, { key: keys.full }) },
    { op: "get /v1/tasks/{id}/events", name: "200 the finished task's events", run: () => request("GET", `/v1/tasks/${succeededTask}/events`, { key: keys.full }) },
    { op: "get /v1/tasks/{id}/events", name: "404 another tenant's task", run: () => request("GET", `/v1/tasks/${succeededTask}/events`, { key: keys.otherTenant }) },
    { op: "post /v1/tasks/{id}/redrive", name: "409 a succeeded task", run: () => request("POST", `/v1/tasks/${succeededTask}/redrive`, { key: keys.full }) },
    { op: "post /v1/tasks/{id}/redrive", name: "404 unknown task", run: () => request("POST", `/v1/tasks/${unknownTask}/redrive`, { key: keys.full }) },
    { op: "post /v1/tasks/{id}/redrive", name: "403 with a read-only key", run: () => request("POST", `/v1/tasks/${succeededTask}/redrive`, { key: keys.readOnly }) },
    { op: "get /v1/approvals", name: "200 the pending calls", run: () => request("GET", "/v1/approvals?status=pending", { key: keys.readOnly }) },
    { op: "get /v1/approvals", name: "422 an unknown status", run: () => request("GET", "/v1/approvals?status=decided", { key: keys.full }) },
    { op: "post /v1/tasks/{id}/approval", name: "409 a task waiting on no call", run: () => request("POST", `/v1/tasks/${succeededTask}/approval`, { key: keys.full, body: { decision: "approve" } }) },
    { op: "post /v1/tasks/{id}/approval", name: "404 another tenant's task", run: () => request("POST", `/v1/tasks/${succeededTask}/approval`, { key: keys.otherTenant, body: { decision: "approve" } }) },
    { op: "post /v1/tasks/{id}/approval", name: "403 with a read-only key", run: () => request("POST", `/v1/tasks/${succeededTask}/approval`, { key: keys.readOnly, body: { decision: "approve" } }) },
    { op: "post /v1/tasks/{id}/approval", name: "422 an unknown decision", run: () => request("POST", `/v1/tasks/${succeededTask}/approval`, { key: keys.full, body: { decision: "maybe" } }) },
    { op: "get /v1/switches", name: "200 the switches", run: () => request("GET", "/v1/switches", { key: keys.readOnly }) },
    { op: "get /v1/switches", name: "401 without a key", run: () => request("GET", "/v1/switches") },
    // A model no agent uses: setting it changes nothing the other cases see.
    { op: "put /v1/switches/{kind}/{name}", name: "200 the switch as stored", run: () => request("PUT", "/v1/switches/model/contract-model", { key: keys.operator, body: { paused: false } }) },
    { op: "put /v1/switches/{kind}/{name}", name: "400 malformed JSON", run: () => request("PUT", "/v1/switches/model/contract-model", { key: keys.operator, raw: '{"paused": ' }) },
    { op: "put /v1/switches/{kind}/{name}", name: "403 with a read-only key", run: () => request("PUT", "/v1/switches/model/contract-model", { key: keys.readOnly, body: { paused: false } }) },
    { op: "put /v1/switches/{kind}/{name}", name: "403 a tenant's operate key", run: () => request("PUT", "/v1/switches/model/contract-model", { key: keys.full, body: { paused: false } }) },
    { op: "put /v1/switches/{kind}/{name}", name: "404 an unknown kind", run: () => request("PUT", "/v1/switches/planet/mars", { key: keys.operator, body: { paused: true } }) },
    { op: "put /v1/switches/{kind}/{name}", name: "422 no paused field", run: () => request("PUT", "/v1/switches/model/contract-model", { key: keys.operator, body: { in_flight: "drain" } }) },
    { op: "get /v1/tasks", name: "200 a page of tasks", run: () => request("GET", "/v1/tasks?limit=2&status=succeeded", { key: keys.full }) },
    { op: "get /v1/tasks", name: "422 a limit that is not a number", run: () => request("GET", "/v1/tasks?limit=many", { key: keys.full }) },
    { op: "post /v1/tasks/{id}/cancel", name: "409 a finished task", run: () => request("POST", `/v1/tasks/${succeededTask}/cancel`, { key: keys.full }) },
    { op: "post /v1/tasks/{id}/cancel", name: "404 unknown task", run: () => request("POST", `/v1/tasks/${unknownTask}/cancel`, { key: keys.full }) },
    {
      op: "post /v1/tasks/{id}/cancel",
      name: "202 a task not finished yet",
      run: async () => {
        const r = await submit(keys.full, { agent: "order-router", input: { order_id: "ORD-1042" }, priority: "low" });
        return request("POST", `/v1/tasks/${(r.body as { id: string }).id}/cancel`, { key: keys.full });
      },
    },
    { op: "get /v1/agents", name: "200 the agents", run: () => request("GET", "/v1/agents", { key: keys.full }) },
    { op: "get /v1/agents", name: "401 without a key", run: () => request("GET", "/v1/agents") },
    { op: "get /v1/agents/{name}", name: "200 one agent", run: () => request("GET", "/v1/agents/order-router", { key: keys.full }) },
    { op: "get /v1/agents/{name}", name: "404 unknown agent", run: () => request("GET", "/v1/agents/no-such-agent", { key: keys.full }) },
    { op: "post /v1/agents/{name}/canary", name: "422 not an agent file", run: () => request("POST", "/v1/agents/order-router/canary", { key: keys.operator, body: { prompt: "no front matter" } }) },
    { op: "post /v1/agents/{name}/canary", name: "404 unknown agent", run: () => request("POST", "/v1/agents/no-such-agent/canary", { key: keys.operator, body: { prompt: canaryText() } }) },
    { op: "post /v1/agents/{name}/canary", name: "201 a canary started", run: () => request("POST", "/v1/agents/order-router/canary", { key: keys.operator, body: { prompt: canaryText(), steps: [5, 100] } }) },
    { op: "post /v1/agents/{name}/canary", name: "409 a second canary", run: () => request("POST", "/v1/agents/order-router/canary", { key: keys.operator, body: { prompt: canaryText() } }) },
    { op: "delete /v1/agents/{name}/canary", name: "200 the canary aborted", run: () => request("DELETE", "/v1/agents/order-router/canary", { key: keys.operator }) },
    { op: "delete /v1/agents/{name}/canary", name: "409 no canary running", run: () => request("DELETE", "/v1/agents/order-router/canary", { key: keys.operator }) },
    { op: "get /v1/dead-letters", name: "200 the list", run: () => request("GET", "/v1/dead-letters?limit=5", { key: keys.full }) },
    { op: "get /v1/dead-letters", name: "401 a wrong key", run: () => request("GET", "/v1/dead-letters", { key: "cfk_0000000000000000_wrong" }) },
    { op: "get /v1/queues", name: "200 the queues", run: () => request("GET", "/v1/queues", { key: keys.operator }) },
    { op: "get /v1/queues", name: "401 without a key", run: () => request("GET", "/v1/queues") },
    { op: "get /v1/queues", name: "403 a tenant's read key", run: () => request("GET", "/v1/queues", { key: keys.readOnly }) },
    { op: "get /v1/limits", name: "200 the limits", run: () => request("GET", "/v1/limits", { key: keys.operator }) },
    { op: "get /v1/limits", name: "401 without a key", run: () => request("GET", "/v1/limits") },
    { op: "get /v1/limits", name: "403 a tenant's read key", run: () => request("GET", "/v1/limits", { key: keys.readOnly }) },
    { op: "post /v1/keys", name: "201 a new key", run: () => request("POST", "/v1/keys", { key: TEST_ADMIN_KEY, body: { tenant: "contract", scopes: ["read"] } }) },
    { op: "post /v1/keys", name: "422 an unknown scope", run: () => request("POST", "/v1/keys", { key: TEST_ADMIN_KEY, body: { tenant: "contract", scopes: ["everything"] } }) },
    { op: "post /v1/keys", name: "403 without the admin scope", run: () => request("POST", "/v1/keys", { key: keys.full, body: { tenant: "contract", scopes: ["read"] } }) },
    { op: "get /v1/keys", name: "200 the keys", run: () => request("GET", "/v1/keys", { key: TEST_ADMIN_KEY }) },
    { op: "get /v1/keys", name: "403 without the admin scope", run: () => request("GET", "/v1/keys", { key: keys.readOnly }) },
    {
      op: "delete /v1/keys/{id}",
      name: "200 the revoked key",
      run: async () => {
        const created = await request("POST", "/v1/keys", { key: TEST_ADMIN_KEY, body: { tenant: "contract", scopes: ["read"] } });
        return request("DELETE", `/v1/keys/${(created.body as { id: string }).id}`, { key: TEST_ADMIN_KEY });
      },
    },
    { op: "delete /v1/keys/{id}", name: "404 unknown key", run: () => request("DELETE", "/v1/keys/0000000000000000", { key: TEST_ADMIN_KEY }) },
    { op: "get /health/live", name: "200 alive", run: () => request("GET", "/health/live") },
    { op: "get /health/ready", name: "200 ready", run: () => request("GET", "/health/ready") },
    { op: "get /metrics", name: "200 the exposition", run: () => request("GET", "/metrics") },
    { op: "get /openapi.json", name: "200 the document", run: () => request("GET", "/openapi.json") },
  ];
}

beforeAll(async () => {
  node = await startNode(
    loadConfig({
      ...EXAMPLES_ENV,
      PORT: "0",
      CLAWFLEET_DATA_DIR: "memory://",
      CLAWFLEET_NAMESPACE: uniqueId("openapi"),
      CLAWFLEET_AUTH: "on",
      CLAWFLEET_ADMIN_KEY: TEST_ADMIN_KEY,
      LOG_LEVEL: "error",
    }),
  );
  base = `http://127.0.0.1:${node.port}`;
  keys.full = await issueTestKey(base, { tenant: "contract" });
  keys.readOnly = await issueTestKey(base, { tenant: "contract", scopes: ["read"] });
  keys.otherTenant = await issueTestKey(base, { tenant: "someone-else" });
  keys.operator = await issueTestKey(base, { tenant: "default" });
  const served = await request("GET", "/openapi.json");
  doc = served.body as OpenApiDocument;
  const task = await submit(keys.full);
  succeededTask = (task.body as { id: string }).id;
  await waitForStatus(succeededTask, ["succeeded"]);
}, 90_000);

afterAll(async () => {
  await node?.stop();
});

/** The document as one JSON Schema resource, so each response's schema is reached by a JSON pointer into it. */
function validatorFor(document: OpenApiDocument) {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  ajv.addFormat("date-time", { validate: (s: string) => !Number.isNaN(Date.parse(s)) && /^\d{4}-\d\d-\d\dT/.test(s) });
  ajv.addFormat("uuid", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  ajv.addFormat("uri", { validate: (s: string) => URL.canParse(s) });
  const id = "https://clawfleet.invalid/openapi.json";
  ajv.addSchema({ ...document, $id: id });
  const pointer = (parts: string[]) => parts.map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
  return (path: string, method: string, status: string) =>
    ajv.compile({ $ref: `${id}#/${pointer(["paths", path, method, "responses", status, "content", "application/json", "schema"])}` });
}

describe("openapi - the served document matches the routes' real answers", () => {
  it("is served at /openapi.json, unauthenticated, as the OpenAPI 3.1 document", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toContain("/v1/tasks");
  });

  it("has cases for every operation it documents, an error case for every /v1 operation", () => {
    const all = cases();
    const ops = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method} ${path}`));
    for (const op of ops) {
      const mine = all.filter((c) => c.op === op);
      expect(mine.length, `${op} has no contract case`).toBeGreaterThan(0);
      if (op.includes(" /v1/")) expect(mine.some((c) => /^[45]\d\d /.test(c.name)), `${op} has no error case`).toBe(true);
    }
    for (const c of all) expect(ops, `case "${c.name}" names an undocumented operation`).toContain(c.op);
  });

  it("refuses, through the same validator, answers that break the schema", async () => {
    const validate = validatorFor(doc);
    const task = (await request("GET", `/v1/tasks/${succeededTask}`, { key: keys.full })).body as Record<string, unknown>;
    const check = validate("/v1/tasks/{id}", "get", "200");
    expect(check(task)).toBe(true);
    const { id: _id, ...withoutId } = task;
    expect(check(withoutId)).toBe(false);
    expect(check({ ...task, status: "sleeping" })).toBe(false);
    expect(validate("/v1/tasks", "post", "404")({ message: "no error envelope" })).toBe(false);
  });

  it("answers every case with a documented status and a body valid against that status's schema", async () => {
    const validate = validatorFor(doc);
    const failures: string[] = [];
    let checked = 0;
    for (const c of cases()) {
      const [method = "", path = ""] = c.op.split(" ");
      const answer = await c.run();
      const expected = Number(c.name.slice(0, 3));
      const label = `${c.op} — ${c.name}`;
      if (answer.status !== expected) {
        failures.push(`${label}: answered ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
        continue;
      }
      const documented = doc.paths[path]?.[method as keyof (typeof doc.paths)[string]];
      const response = documented?.responses[String(answer.status)];
      if (!response) {
        failures.push(`${label}: status ${answer.status} is not documented`);
        continue;
      }
      const content = response.content ?? {};
      if (!(answer.contentType in content)) {
        failures.push(`${label}: content type ${answer.contentType} is not documented (${Object.keys(content).join(", ")})`);
        continue;
      }
      if (answer.contentType === "application/json") {
        const check = validate(path, method, String(answer.status));
        if (!check(answer.body)) failures.push(`${label}: ${JSON.stringify(check.errors?.slice(0, 3))}`);
      }
      checked++;
    }
    expect(failures).toEqual([]);
    expect(checked).toBe(cases().length);
  }, 60_000);
});
