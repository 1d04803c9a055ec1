/**
 * The provider client's fetch (src/llm/httpFetch.ts) against a real HTTP server on
 * loopback: what the SDK relies on of fetch — bodies, headers, status, decompression,
 * event streams as they arrive, keep-alive, and the errors it tells apart (a refused
 * connection, an abort).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import zlib from "node:zlib";
import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpFetch } from "../../src/llm/httpFetch";
import { startSimServer, type SimServer } from "../../src/sim";

describe("httpFetch", () => {
  let server: http.Server;
  let base: string;
  const sockets = new Set<unknown>();
  let streamEnded = false;
  let releaseStream = () => {};

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      sockets.add(req.socket);
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        switch (req.url) {
          case "/echo":
            res.writeHead(201, "Made", [["Content-Type", "application/json"], ["X-Twice", "a"], ["X-Twice", "b"]]);
            res.end(JSON.stringify({ method: req.method, body, auth: req.headers["x-api-key"], type: req.headers["content-type"] }));
            return;
          case "/gzip":
            res.writeHead(200, { "Content-Type": "application/json", "Content-Encoding": "gzip" });
            res.end(zlib.gzipSync(JSON.stringify({ packed: true })));
            return;
          case "/empty":
            res.writeHead(204);
            res.end();
            return;
          case "/reset-content":
            res.writeHead(205);
            res.end();
            return;
          case "/odd-status":
            res.writeHead(600);
            res.end("?");
            return;
          case "/events":
            res.writeHead(200, { "Content-Type": "text/event-stream" });
            res.write("event: first\ndata: 1\n\n");
            releaseStream = () => {
              streamEnded = true;
              res.end("event: last\ndata: 2\n\n");
            };
            return;
          case "/never":
            return;
          default:
            res.writeHead(404);
            res.end("no");
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("sends the method, headers and body; answers status, text and every header", async () => {
    const res = await httpFetch(`${base}/echo`, { method: "POST", headers: new Headers({ "x-api-key": "k1", "content-type": "application/json" }), body: '{"a":1}' });
    expect(res.status).toBe(201);
    expect(res.statusText).toBe("Made");
    expect(res.ok).toBe(true);
    expect(res.headers.get("x-twice")).toBe("a, b");
    expect(await res.json()).toEqual({ method: "POST", body: '{"a":1}', auth: "k1", type: "application/json" });
    const bytes = await httpFetch(`${base}/echo`, { method: "PUT", headers: [["x-api-key", "k2"]], body: new TextEncoder().encode("raw") });
    expect(await bytes.json()).toMatchObject({ method: "PUT", body: "raw", auth: "k2" });
    const missing = await httpFetch(new URL(`${base}/nothing`));
    expect([missing.status, missing.ok, await missing.text()]).toEqual([404, false, "no"]);
  });

  it("decompresses a gzip answer and drops the encoding headers", async () => {
    const res = await httpFetch(`${base}/gzip`);
    expect(res.headers.get("content-encoding")).toBeNull();
    expect(await res.json()).toEqual({ packed: true });
  });

  it("a 204 has no body", async () => {
    const res = await httpFetch(`${base}/empty`, { method: "DELETE" });
    expect(res.status).toBe(204);
    expect(res.body).toBeNull();
  });

  it("a 205 has no body either; a status fetch cannot represent fails the call instead of the process", async () => {
    expect((await httpFetch(`${base}/reset-content`)).status).toBe(205);
    await expect(httpFetch(`${base}/odd-status`)).rejects.toMatchObject({ message: "fetch failed", cause: { name: "RangeError" } });
  });

  it("an abort in the middle of an event stream fails its body with the abort's reason", async () => {
    const controller = new AbortController();
    const res = await httpFetch(`${base}/events`, { signal: controller.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    controller.abort(new Error("caller left"));
    await expect(reader.read()).rejects.toThrow("caller left");
    releaseStream();
  });

  it("keeps the connection alive between calls", async () => {
    sockets.clear();
    for (let i = 0; i < 5; i++) await (await httpFetch(`${base}/echo`, { method: "POST", body: String(i) })).json();
    expect(sockets.size).toBe(1);
  });

  it("hands an event stream on as it arrives, before the server has finished it", async () => {
    streamEnded = false;
    const res = await httpFetch(`${base}/events`);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("event: first");
    expect(streamEnded).toBe(false);
    releaseStream();
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain("event: last");
  });

  it("an abort rejects with the signal's reason; one aborted before the call never sends", async () => {
    const controller = new AbortController();
    const pending = httpFetch(`${base}/never`, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("gave up")), 50);
    await expect(pending).rejects.toThrow("gave up");
    const plain = new AbortController();
    plain.abort();
    await expect(httpFetch(`${base}/echo`, { signal: plain.signal })).rejects.toMatchObject({ name: "AbortError" });
  });

  it("a refused connection is a TypeError('fetch failed') with its cause, as from fetch", async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const err = await httpFetch(`http://127.0.0.1:${port}/x`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(err).toMatchObject({ message: "fetch failed", cause: { code: "ECONNREFUSED" } });
  });
});

describe("httpFetch on a kept-alive socket the server drops", () => {
  it("a request that meets a closed reused socket goes again once on a new one; a reset on a new socket fails", async () => {
    const requestsOn = new Map<unknown, number>();
    let requests = 0;
    const server = http.createServer((req, res) => {
      requests++;
      const n = (requestsOn.get(req.socket) ?? 0) + 1;
      requestsOn.set(req.socket, n);
      // The second request on a connection meets the server's close, as at its idle timeout.
      if (req.url === "/drop-second" && n === 2) return void req.socket.destroy();
      if (req.url === "/drop") return void req.socket.destroy();
      res.end("ok");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await (await httpFetch(`${base}/drop-second`, { method: "POST", body: "1" })).text()).toBe("ok");
      expect(await (await httpFetch(`${base}/drop-second`, { method: "POST", body: "2" })).text()).toBe("ok");
      expect({ connections: requestsOn.size, requests }).toEqual({ connections: 2, requests: 3 });
      server.closeAllConnections();
      await new Promise((r) => setTimeout(r, 20));
      requests = 0;
      await expect(httpFetch(`${base}/drop`, { method: "POST", body: "3" })).rejects.toMatchObject({ message: "fetch failed", cause: { code: "ECONNRESET" } });
      expect(requests).toBe(1);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("httpFetch under the Anthropic SDK", () => {
  let sim: SimServer;

  beforeAll(async () => {
    sim = await startSimServer({ latencyMs: 0, requestsPerMinute: 2 });
  });

  afterAll(async () => {
    await sim.close();
  });

  it("answers a message, streams one, maps a 429 with its headers and a refused connection", async () => {
    const client = new Anthropic({ apiKey: "test", baseURL: sim.url, maxRetries: 0, fetch: httpFetch });
    const { data, response } = await client.messages.create({ model: "claude-haiku-4-5", max_tokens: 50, messages: [{ role: "user", content: "hello" }] }).withResponse();
    expect(data.type).toBe("message");
    expect(response.headers.get("anthropic-ratelimit-requests-limit")).toBe("2");
    const streamed = await client.messages.stream({ model: "claude-haiku-4-5", max_tokens: 50, messages: [{ role: "user", content: "hello" }] }).finalMessage();
    expect(streamed.type).toBe("message");
    const limited = await client.messages.create({ model: "claude-haiku-4-5", max_tokens: 50, messages: [{ role: "user", content: "again" }] }).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(Anthropic.RateLimitError);
    expect((limited as InstanceType<typeof Anthropic.RateLimitError>).headers.get("retry-after")).not.toBeNull();
    const refused = new Anthropic({ apiKey: "test", baseURL: "http://127.0.0.1:1", maxRetries: 0, fetch: httpFetch });
    await expect(refused.messages.create({ model: "claude-haiku-4-5", max_tokens: 5, messages: [{ role: "user", content: "x" }] })).rejects.toBeInstanceOf(Anthropic.APIConnectionError);
  });
});
