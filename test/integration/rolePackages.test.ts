/**
 * A process loads the heavy packages of its own roles only: the provider's SDK is the
 * rate gateway's, the MCP client the executor's, moleculer-web the api's, and the
 * OpenTelemetry SDK is loaded only when tracing is on. Each role's process of the
 * distributed layout is started on NATS, Redis and Postgres with a preload that lists,
 * at exit, every npm package it loaded (test/fixtures/preload/loadedPackages.cjs).
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeProcess, stopAll, tempDir } from "../../testkit/cluster";
import { createScratch, hasService, type Scratch } from "../helpers/services";

const ready = hasService("postgres") && hasService("redis") && hasService("nats");
const PRELOAD = path.join(__dirname, "..", "fixtures", "preload", "loadedPackages.cjs");
const PROVIDER_SDK = "@anthropic-ai/sdk";
const MCP = "@modelcontextprotocol/sdk";
const HTTP_GATEWAY = "moleculer-web";
const TRACING_SDK = "@opentelemetry/sdk-node";

describe.skipIf(!ready)("a role process loads its own roles' packages only", () => {
  let scratch: Scratch;
  let out: { dir: string; remove(): void };

  beforeAll(async () => {
    out = tempDir("clawfleet-role-modules-");
    scratch = await createScratch("rolemods");
  });
  afterAll(async () => {
    await scratch?.remove();
    out?.remove();
  });

  /** The npm packages a process with `services` loaded from its start to its graceful stop. */
  async function packagesOf(services: string, env: Record<string, string> = {}): Promise<string[]> {
    const file = path.join(out.dir, `${services.replace(/,/g, "+")}.json`);
    const node = await startNodeProcess({
      name: services,
      env: { ...scratch.env(services), LOG_LEVEL: "warn", NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --require ${PRELOAD}`.trim(), CF_TEST_LOADED_PACKAGES: file, ...env },
      timeoutMs: 90_000,
    });
    await stopAll([node]);
    const exit = await node.exited;
    expect(exit, `${services} did not stop cleanly:\n${node.output().slice(-3000)}`).toEqual({ code: 0, signal: null });
    return JSON.parse(fs.readFileSync(file, "utf8")) as string[];
  }

  it("a planner loads neither the provider's SDK, the MCP client, the HTTP gateway nor the tracing SDK", async () => {
    const loaded = await packagesOf("planner");
    expect(loaded).toContain("moleculer");
    for (const pkg of [PROVIDER_SDK, MCP, HTTP_GATEWAY, TRACING_SDK]) expect(loaded, pkg).not.toContain(pkg);
  }, 120_000);

  it("the checkpoint role loads none of them either", async () => {
    const loaded = await packagesOf("checkpoint");
    expect(loaded).toContain("pg");
    for (const pkg of [PROVIDER_SDK, MCP, HTTP_GATEWAY, TRACING_SDK]) expect(loaded, pkg).not.toContain(pkg);
  }, 120_000);

  it("the rate gateway loads the provider's SDK, and the api moleculer-web; each without the other's", async () => {
    const gateway = await packagesOf("rate-gateway");
    expect(gateway).toContain(PROVIDER_SDK);
    for (const pkg of [MCP, HTTP_GATEWAY, TRACING_SDK]) expect(gateway, pkg).not.toContain(pkg);
    const api = await packagesOf("api,intake,metrics");
    expect(api).toContain(HTTP_GATEWAY);
    for (const pkg of [PROVIDER_SDK, MCP, TRACING_SDK]) expect(api, pkg).not.toContain(pkg);
  }, 240_000);

  it("with tracing on, the tracing SDK is loaded", async () => {
    // Nothing listens there: the exporter's failed sends are logged, and the process stops as usual.
    const loaded = await packagesOf("checkpoint", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" });
    expect(loaded).toContain(TRACING_SDK);
  }, 120_000);
});
