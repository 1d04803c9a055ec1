/**
 * api - kept-alive connections: idle ones stay open KEEP_ALIVE_TIMEOUT_MS (longer
 * than clients' and load balancers' idle timeouts), yet a stopping server does
 * not wait that long for them: once drained, an answer closes its connection and
 * idle connections are closed, so `close()` waits only for the requests in flight.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { KEEP_ALIVE_TIMEOUT_MS, keepConnections } from "../../src/api/http";

const servers: http.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.closeAllConnections();
});

/** A server that answers each POST once its whole body has come. */
async function server(): Promise<{ server: http.Server; port: number; drain: () => void }> {
  const s = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end("ok"));
  });
  const kept = keepConnections(s);
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return { server: s, port: (s.address() as AddressInfo).port, drain: () => kept.drain() };
}

/** A POST whose body is sent only when `send` is called: in flight meanwhile. */
function pending(port: number, agent: http.Agent): { send: () => void; answer: Promise<{ status: number; connection: string | undefined }> } {
  const req = http.request({ host: "127.0.0.1", port, path: "/", method: "POST", agent, headers: { "Content-Length": "2" } });
  const answer = new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
    });
    req.on("error", reject);
  });
  req.flushHeaders();
  return { send: () => req.end("hi"), answer };
}

const closed = (s: http.Server): Promise<number> => {
  const started = Date.now();
  return new Promise((resolve) => s.close(() => resolve(Date.now() - started)));
};

describe("api - kept-alive connections", () => {
  it("stay open between requests, as the Keep-Alive header says", async () => {
    const { port } = await server();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = pending(port, agent);
      first.send();
      expect(await first.answer).toEqual({ status: 200, connection: "keep-alive" });
      expect(KEEP_ALIVE_TIMEOUT_MS).toBeGreaterThanOrEqual(65_000);
    } finally {
      agent.destroy();
    }
  });

  it("do not hold a drained server's close: the request in flight is answered, and its connection closed", async () => {
    const { server: s, port, drain } = await server();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    try {
      const before = pending(port, agent);
      before.send();
      await before.answer;
      // One connection idle and kept, one with a request in flight when the stop begins.
      const inFlight = pending(port, agent);
      await new Promise((r) => setTimeout(r, 50));
      drain();
      const closing = closed(s);
      inFlight.send();
      expect(await inFlight.answer).toEqual({ status: 200, connection: "keep-alive" });
      expect(await Promise.race([closing, new Promise<string>((r) => setTimeout(() => r("still open after 5 s"), 5_000))])).toBeLessThan(1_000);
    } finally {
      agent.destroy();
    }
  });

  it("answer a drained server's new requests with Connection: close", async () => {
    const { port, drain } = await server();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      drain();
      const after = pending(port, agent);
      after.send();
      expect(await after.answer).toEqual({ status: 200, connection: "close" });
    } finally {
      agent.destroy();
    }
  });
});
