/**
 * The benchmarks' provider call (bench/throughput/providerCall.ts), by client: each must reach the simulated
 * provider and bring back its message id, and each must really be the client it is named for, since the
 * bare+SDK peer's figures stand for "the official SDK's round trip": the SDK announces itself in its
 * `user-agent` and `x-stainless-*` headers, node:http alone sends neither; over Node's global fetch it also
 * sends the fetch standard's `sec-fetch-mode`. A recording hop in front of the
 * real simulated model reads the headers.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { providerCall, type CallClient } from "../../bench/throughput/providerCall";
import { startSimServer, type SimServer } from "../../src/sim";

describe("the benchmarks' provider call", () => {
  let sim: SimServer;
  let hop: http.Server;
  let base: string;
  const seen: http.IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    sim = await startSimServer({});
    hop = http.createServer((req, res) => {
      seen.push(req.headers);
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        fetch(`${sim.url}${req.url ?? "/"}`, { method: req.method ?? "POST", headers: { "content-type": "application/json" }, body: Buffer.concat(chunks) })
          .then(async (r) => {
            res.writeHead(r.status, { "content-type": "application/json" });
            res.end(Buffer.from(await r.arrayBuffer()));
          })
          // The call under test then fails with the hop's own error, not a hang.
          .catch((err: unknown) => {
            res.writeHead(502, { "content-type": "application/json" });
            res.end(JSON.stringify({ type: "error", error: { type: "api_error", message: `the recording hop could not reach the simulated model: ${String(err)}` } }));
          });
      });
    });
    await new Promise<void>((resolve) => hop.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(hop.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => hop.close(() => resolve()));
    await sim.close();
  });

  it.each<[CallClient, boolean, boolean]>([
    ["http", false, false],
    ["sdk", true, false],
    ["sdk-global-fetch", true, true],
  ])("through %s: answered with a message id; the SDK's headers sent: %s; undici's fetch used: %s", async (client, viaSdk, viaUndici) => {
    seen.length = 0;
    const call = providerCall(base, client);
    const ids = [await call(), await call()];
    for (const id of ids) expect(id).toMatch(/^msg_/);
    expect(seen).toHaveLength(2);
    for (const h of seen) {
      expect(String(h["user-agent"] ?? "").startsWith("Anthropic/JS")).toBe(viaSdk);
      expect(Object.keys(h).some((k) => k.startsWith("x-stainless-"))).toBe(viaSdk);
      // Node's global fetch (undici) sends the fetch standard's `sec-fetch-mode`; Clawfleet's httpFetch does not.
      expect(h["sec-fetch-mode"] !== undefined).toBe(viaUndici);
    }
  });
});
