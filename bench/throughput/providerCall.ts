/**
 * One model turn as an HTTP call to the simulated provider, as the benchmarks' peers make it: the
 * order-router's first turn (its prompt, its four tools, the order), always the same, and the answer's
 * message id. Through one of three clients:
 *
 *   http              a kept-alive node:http agent and a JSON.parse of the answer, no SDK;
 *   sdk               the official SDK's `messages.create`, set up as Clawfleet's rate gateway sets it up
 *                     (src/llm/anthropicGateway.ts: over the `fetch` Clawfleet gives it, src/llm/httpFetch.ts,
 *                     its own OpenTelemetry spans off), as the gateway makes an unstreamed call;
 *   sdk-global-fetch  the same over Node's global fetch (undici), the SDK's default.
 *
 * The SDK is loaded only by a process that calls through it, as Clawfleet's roles load it.
 *
 * Used by the bare pipeline's gateway (bareNode.ts) and by bench/providerClient.ts.
 */
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import type * as AnthropicSdk from "@anthropic-ai/sdk";
import { parseAgentFile } from "../../src/agent/definition";
import { httpFetch } from "../../src/llm/httpFetch";
import type { ProviderClient } from "./barePlan";

export type CallClient = ProviderClient | "sdk-global-fetch";

/** The order-router agent's file, whose prompt and tool names the provider call carries. */
const AGENT_FILE = path.join(__dirname, "..", "..", "examples", "order-router", "prompts", "order-router.md");

/** A provider that takes the request and never answers fails the turn after this long (as Clawfleet's would). */
const PROVIDER_TIMEOUT_MS = 60_000;

/** BARE_PROVIDER_CLIENT's value: `http` when unset. */
export function providerClient(v = "http"): ProviderClient {
  if (v === "http" || v === "sdk") return v;
  throw new Error(`BARE_PROVIDER_CLIENT is http or sdk, not ${v}`);
}

/** The order-router's first model turn on its default tier, as the provider is sent it: the agent file read as Clawfleet reads it. */
function orderRouterFirstTurn() {
  const agent = parseAgentFile(fs.readFileSync(AGENT_FILE, "utf8"), AGENT_FILE);
  const tier = agent.tiers[agent.defaultTier];
  if (!tier) throw new Error(`${AGENT_FILE}: no tier ${agent.defaultTier}`);
  const tools = agent.tools.map((name) => ({
    name,
    description: `The order-router's ${name} tool.`,
    input_schema: { type: "object" as const, properties: { order_id: { type: "string" } }, required: ["order_id"] },
  }));
  return { model: tier.model, max_tokens: tier.max_tokens, system: agent.systemPrompt, tools, messages: [{ role: "user" as const, content: "Route order ORD-1042." }] };
}

/** One model turn as an HTTP call to the provider at `base`, through `client`: the order-router's first turn; the answer's id. */
export function providerCall(base: string, client: CallClient): () => Promise<string> {
  const request = orderRouterFirstTurn();
  if (client !== "http") {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Anthropic = (require("@anthropic-ai/sdk") as typeof AnthropicSdk).default;
    const sdk = new Anthropic({ apiKey: "bare", baseURL: base, maxRetries: 0, timeout: PROVIDER_TIMEOUT_MS, openTelemetry: false, ...(client === "sdk" ? { fetch: httpFetch } : {}) });
    return async () => (await sdk.messages.create(request)).id;
  }
  const agent = new http.Agent({ keepAlive: true });
  const url = new URL("/v1/messages", base);
  const body = JSON.stringify(request);
  const headers = { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), "x-api-key": "bare", "anthropic-version": "2023-06-01" };
  return () =>
    new Promise<string>((resolve, reject) => {
      const req = http.request(url, { method: "POST", agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) return reject(new Error(`provider answered ${res.statusCode}: ${text.slice(0, 200)}`));
          try {
            const answer = JSON.parse(text) as { id?: unknown };
            if (typeof answer.id !== "string") throw new Error(`provider answered 200 without a message id: ${text.slice(0, 200)}`);
            resolve(answer.id);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
        res.on("error", reject);
      });
      req.setTimeout(PROVIDER_TIMEOUT_MS, () => req.destroy(new Error(`provider did not answer in ${PROVIDER_TIMEOUT_MS} ms`)));
      req.on("error", reject);
      req.end(body);
    });
}
