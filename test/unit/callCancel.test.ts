/**
 * call cancel - a planner that gives up on a model call (a shutdown past its
 * step drain) reaches the provider: the official SDK's HTTP request is aborted,
 * directly (AnthropicGateway) and through the real rate-gateway service on a
 * broker (cancellableCall, the cancel event, the service's CancelRegistry).
 * The provider is an HTTP server that never answers a model call, so only an
 * abort can end one.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rateGatewayService } from "../../services/rate-gateway.service";
import { loadConfig } from "../../src/config";
import type { CompleteRequest, CompleteResponse } from "../../src/contracts";
import { CallCancelledError } from "../../src/errors";
import { AnthropicGateway } from "../../src/llm/anthropicGateway";
import { Resources } from "../../src/node/resources";
import { Metrics } from "../../src/telemetry/metrics";
import { cancellableCall, type CancellableBroker } from "../../src/transport/cancel";
import { ORDER_ROUTER_PROMPTS } from "../../testkit/examples";

/** Answers connectivity checks; holds every model call, and tells when the client hung one up. */
function holdingProvider() {
  const hungUp: Array<(taskId: string) => void> = [];
  const arrived: Array<(taskId: string) => void> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.url?.startsWith("/v1/messages/count_tokens")) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ input_tokens: 3 }));
        return;
      }
      const taskId = String((JSON.parse(Buffer.concat(chunks).toString()) as { metadata?: { user_id?: string } }).metadata?.user_id);
      for (const f of arrived.splice(0)) f(taskId);
      // Never answered: the response closes only when the client's connection does.
      res.on("close", () => {
        if (!res.writableFinished) for (const f of hungUp.splice(0)) f(taskId);
      });
    });
  });
  return {
    server,
    nextArrival: () => new Promise<string>((r) => arrived.push(r)),
    nextHangUp: () => new Promise<string>((r) => hungUp.push(r)),
    url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
  };
}

function request(taskId: string): CompleteRequest {
  return {
    taskId,
    agent: "order-router",
    promptVersion: "v1",
    step: 1,
    tier: "reason",
    model: "claude-haiku-4-5",
    maxTokens: 64,
    priority: "normal",
    system: "You route orders.",
    messages: [{ role: "user", content: "route ORD-1" }],
    tools: [],
  };
}

describe("call cancel - an abort reaches the SDK's request", () => {
  const provider = holdingProvider();
  let broker: ServiceBroker;
  let resources: Resources;

  beforeAll(async () => {
    await new Promise<void>((r) => provider.server.listen(0, "127.0.0.1", () => r()));
    resources = new Resources(loadConfig({ ANTHROPIC_BASE_URL: provider.url(), CLAWFLEET_PROMPTS_DIR: ORDER_ROUTER_PROMPTS, LOG_LEVEL: "fatal" }));
    broker = new ServiceBroker({ logger: false, nodeID: "cancel-test" });
    broker.createService(rateGatewayService(resources, new Metrics({ node: "cancel-test" }, { enabled: false })));
    await broker.start();
  }, 30_000);

  afterAll(async () => {
    await broker?.stop();
    await resources?.close();
    provider.server.closeAllConnections();
    await new Promise<void>((r) => provider.server.close(() => r()));
  });

  it("anthropic gateway - aborting the signal aborts the provider request and rejects with the signal's reason", async () => {
    const gateway = new AnthropicGateway({ apiKey: "k", baseURL: provider.url(), maxRetries: 0 });
    const abort = new AbortController();
    const arrived = provider.nextArrival();
    const hungUp = provider.nextHangUp();
    const call = gateway.complete(request("direct"), abort.signal);
    const settled = call.then(
      () => "answered",
      (err: unknown) => err,
    );
    expect(await arrived).toBe("direct");

    const reason = new CallCancelledError("shutting down");
    abort.abort(reason);

    expect(await settled).toBe(reason);
    expect(await hungUp).toBe("direct");
  });

  it("rate-gateway service - the caller's abort stops its wait and cancels the provider request at the gateway", async () => {
    const calls: CancellableBroker = {
      call: (action, params, opts) => broker.call(action, params, opts),
      broadcast: (event, payload, groups) => broker.broadcast(event, payload, groups),
      getLogger: (name) => broker.getLogger(name),
    };
    const abort = new AbortController();
    const arrived = provider.nextArrival();
    const hungUp = provider.nextHangUp();
    const settled = cancellableCall<CompleteResponse, CompleteRequest>(calls, "rate-gateway.complete", request("via-broker"), abort.signal, {
      timeout: 0,
      groups: ["rate-gateway"],
    }).then(
      () => "answered",
      (err: unknown) => err,
    );
    expect(await arrived).toBe("via-broker");

    const reason = new Error("planner is shutting down");
    abort.abort(reason);

    // The caller stops waiting with its own reason; the gateway, told by the cancel event, aborts the SDK request.
    expect(await settled).toBe(reason);
    expect(await hungUp).toBe("via-broker");
  });
});
