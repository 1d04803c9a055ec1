/**
 * The REST fuzz suite's findings, each as the smallest request that showed it, on
 * a real embedded node (moleculer-web, PGlite in memory), over a bare socket.
 */
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { loadConfig } from "../../src/config";
import { ORDER_ROUTER_PROMPTS } from "../../testkit/examples";
import { uniqueId } from "../helpers/services";
import { rawRequest, type RawResponse } from "./rawHttp";

let node: ClawfleetNode;

beforeAll(async () => {
  const config = loadConfig({
    CLAWFLEET_PROMPTS_DIR: ORDER_ROUTER_PROMPTS,
    CLAWFLEET_USER_SERVICES: "none",
    CLAWFLEET_AUTH: "off",
    PORT: "0",
    CLAWFLEET_DATA_DIR: "memory://",
    CLAWFLEET_NAMESPACE: uniqueId("fuzzreg"),
    LOG_LEVEL: "fatal",
  });
  node = await startNode(config);
}, 60_000);

afterAll(async () => {
  await node?.stop();
});

const task = Buffer.from('{"agent":"order-router","input":"x"}');

function errorOf(r: RawResponse | undefined): { type?: string; message?: string } {
  expect(r, "an answer").toBeDefined();
  return (JSON.parse(r?.body.toString("utf8") ?? "null") as { error: { type?: string; message?: string } }).error;
}

describe("REST fuzz regressions", () => {
  it.each([
    ["a request target with raw non-ASCII bytes", Buffer.from([0x2f, 0x76, 0x31, 0x2f, 0xc3, 0xa9]), [], 400, "malformed_request"],
    ["a head past 16 KiB", "/v1/tasks", [["X-Padding", "a".repeat(20_000)]], 431, "headers_too_large"],
  ] as const)("answers %s, which Node's parser refuses, with the JSON error body", async (_what, target, headers, status, type) => {
    const r = await rawRequest(node.port, { method: "GET", target, headers });
    expect(r?.status).toBe(status);
    expect(r?.headers["content-type"]).toMatch(/^application\/json/);
    expect(errorOf(r).type).toBe(type);
  });

  it("answers a broken request line followed by a 1 MiB body, which it reads and drops, instead of resetting the connection", async () => {
    const body = Buffer.alloc(1_048_000, 0x61);
    const r = await rawRequest(node.port, {
      method: "POST",
      target: Buffer.from([0x2f, 0x76, 0x31, 0x2f, 0xe9]),
      headers: [["Content-Type", "application/json"]],
      body,
    });
    expect(r?.status).toBe(400);
    expect(errorOf(r).type).toBe("malformed_request");
  });

  it.each([
    ["gzip", task],
    ["deflate", task],
    ["gzip", gzipSync(task).subarray(0, 12)],
    ["br", task],
  ])("answers a body that does not decode as its Content-Encoding (%s) with 400 malformed_request", async (encoding, body) => {
    const r = await rawRequest(node.port, {
      method: "POST",
      target: "/v1/tasks",
      headers: [
        ["Content-Type", "application/json"],
        ["Content-Encoding", encoding],
      ],
      body,
    });
    expect(r?.status).toBe(400);
    const e = errorOf(r);
    expect(e.type).toBe("malformed_request");
    expect(e.message).toMatch(/Content-Encoding/);
  });

  it("answers a path with a broken percent-escape with a 400 that blames the path, not the body", async () => {
    const r = await rawRequest(node.port, { method: "GET", target: "/v1/tasks/%ZZ", headers: [] });
    expect(r?.status).toBe(400);
    const e = errorOf(r);
    expect(e.type).toBe("malformed_request");
    expect(e.message).not.toMatch(/body/);
  });
});
