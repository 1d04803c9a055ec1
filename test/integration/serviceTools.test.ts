/**
 * Tools from anywhere in the cluster: a user's service with the ClawfleetTools
 * mixin on one broker, the executor (ToolExecutor over the registry) on another,
 * over the real NATS transporter in a namespace of their own. Discovery as nodes
 * join and leave, replicas balanced by Moleculer, the model's input checked
 * before any call, the idempotency key and task id in `ctx.meta`, the tool's
 * timeout, and no hang when a tool is gone or never answers. The last suite runs
 * the same service in the executor's own broker, as embedded mode does.
 */
import { randomUUID } from "node:crypto";
import { ServiceBroker, type Context, type ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { ClawfleetTools } from "../../mixins";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import type { ToolCall } from "../../src/contracts";
import { ClawfleetRegenerator, isRetryable, ToolOutcomeUnknownError } from "../../src/errors";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { ToolExecutor } from "../../src/tools/executor";
import { brokerDirectory, ServiceToolSource } from "../../src/tools/sources/services";
import { useMemoryStore } from "../helpers/memoryStore";
import { hasService, NATS_TEST_URL, uniqueId } from "../helpers/services";

const AGENT = parseAgentFile(
  ["---", "name: shop", "tools: [quote, slow_quote, charge_card]", "tiers:", "  t:", "    model: m", "    max_tokens: 100", "default_tier: t", "---", "Shop.", ""].join("\n"),
  "inline:shop.md",
);

/** Every call that reached a tool's body, on whichever node. */
const reached: Array<{ node: string; action: string; params: unknown; meta: Record<string, unknown> }> = [];

function paymentsService(node: string): ServiceSchema {
  const seen = (ctx: Context, action: string) => reached.push({ node, action, params: ctx.params, meta: { ...(ctx.meta as Record<string, unknown>) } });
  return {
    name: "payments",
    mixins: [ClawfleetTools],
    actions: {
      quote: {
        tool: { description: "Quotes a price.", input: () => z.object({ amount: z.number().int().min(1).describe("cents"), currency: z.enum(["EUR", "USD"]).default("EUR") }) },
        handler(ctx: Context<{ amount: number }>) {
          seen(ctx, "quote");
          return { node, total: ctx.params.amount * 2 };
        },
      },
      slowQuote: {
        tool: { name: "slow_quote", description: "Quotes slowly.", timeoutMs: 300, input: { type: "object", properties: {} } },
        async handler(ctx: Context) {
          seen(ctx, "slow_quote");
          await new Promise((r) => setTimeout(r, 3_000));
          return { late: true };
        },
      },
      charge: {
        tool: { name: "charge_card", description: "Charges a card.", sideEffect: true, timeoutMs: 300, input: { type: "object", properties: { amount: { type: "integer" } }, required: ["amount"] } },
        handler(ctx: Context) {
          seen(ctx, "charge_card");
          return new Promise(() => undefined); // never answers
        },
      },
    },
  };
}

function call(tool: string, input: unknown): ToolCall {
  const taskId = randomUUID();
  return { taskId, agent: "shop", step: 3, tool, toolUseId: "tu_3", input, idempotencyKey: `${taskId}:3` };
}

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const ready = hasService("nats");

describe.skipIf(!ready)("service tools - across brokers over NATS", () => {
  const namespace = uniqueId("tools");
  const brokers = new Map<string, ServiceBroker>();
  let source: ServiceToolSource;
  let exec: ToolExecutor;

  const broker = (nodeID: string) => {
    const b = new ServiceBroker({
      namespace,
      nodeID,
      transporter: NATS_TEST_URL,
      logger: false,
      errorRegenerator: new ClawfleetRegenerator(),
      registry: { strategy: "RoundRobin", preferLocal: true },
      requestTimeout: 0,
    });
    brokers.set(nodeID, b);
    return b;
  };
  const startTools = async (nodeID: string) => {
    const b = broker(nodeID);
    b.createService(paymentsService(nodeID));
    await b.start();
    return b;
  };

  beforeAll(async () => {
    const e = broker("executor");
    await e.start();
    source = new ServiceToolSource(brokerDirectory(e), { warn: () => undefined });
    exec = new ToolExecutor({ sources: [source], agents: new AgentCatalog([AGENT]), ledger: store, maxUnknownOutcomes: 5, logger: { warn: () => undefined } });
  });

  afterAll(async () => {
    await Promise.all([...brokers.values()].map((b) => b.stop()));
  });

  it("discovery - the tools appear in the executor's specs once their node joins, with the schema the mixin published", async () => {
    expect(await exec.specs("shop", AGENT.tools)).toEqual([]);
    await startTools("tools-1");
    await until("the payments service on the executor's node", async () => (await exec.specs("shop", AGENT.tools)).length === 3);
    const specs = await exec.specs("shop", AGENT.tools);
    expect(specs.map((s) => s.name)).toEqual(["quote", "slow_quote", "charge_card"]);
    expect(specs[0]).toEqual({
      name: "quote",
      description: "Quotes a price.",
      input_schema: {
        type: "object",
        properties: { amount: { type: "integer", minimum: 1, maximum: 9007199254740991, description: "cents" }, currency: { type: "string", enum: ["EUR", "USD"], default: "EUR" } },
        required: ["amount"],
      },
    });
  });

  it("meta - the action gets the model's input as params (parsed by its zod schema) and the idempotency key and task id in ctx.meta", async () => {
    const c = call("quote", { amount: 21 });
    expect(await exec.run(c)).toMatchObject({ ok: true, output: { node: "tools-1", total: 42 } });
    const last = reached.at(-1);
    expect(last?.params).toEqual({ amount: 21, currency: "EUR" });
    expect(last?.meta).toMatchObject({ idempotencyKey: c.idempotencyKey, taskId: c.taskId, step: 3, agent: "shop" });
  });

  it("validation - input failing the schema is refused field by field and never reaches the tool's node", async () => {
    const before = reached.length;
    const res = await exec.run(call("quote", { amount: 0, currency: "GBP" }));
    expect(res.ok).toBe(false);
    expect(res.output).toEqual({ error: "invalid input", issues: [{ path: "amount", message: "must be >= 1" }, { path: "currency", message: 'must be one of "EUR", "USD"' }] });
    expect(reached.length).toBe(before);
  });

  it("replicas - a second node with the same service shares the calls (Moleculer balances them)", async () => {
    await startTools("tools-2");
    await until("both replicas in the index", () => source.nodesOf("quote").length === 2);
    const nodes = new Set<string>();
    for (let i = 0; i < 8; i++) nodes.add(((await exec.run(call("quote", { amount: 1 }))).output as { node: string }).node);
    expect([...nodes].sort()).toEqual(["tools-1", "tools-2"]);
  });

  it("leaving - when a replica leaves the others serve every call; when the last leaves the tool is unknown, at once", async () => {
    await brokers.get("tools-2")?.stop();
    await until("tools-2 out of the index", () => source.nodesOf("quote").length === 1);
    for (let i = 0; i < 4; i++) expect(await exec.run(call("quote", { amount: 1 }))).toMatchObject({ ok: true, output: { node: "tools-1" } });

    await brokers.get("tools-1")?.stop();
    await until("payments out of the index", () => source.nodesOf("quote").length === 0);
    const started = Date.now();
    expect(await exec.run(call("quote", { amount: 1 }))).toMatchObject({ ok: false, output: { error: expect.stringMatching(/^unknown tool "quote"/) } });
    expect(Date.now() - started).toBeLessThan(1_000);
    await startTools("tools-3");
    await until("payments back", () => source.nodesOf("quote").length === 1);
  });

  it("timeout - a tool past its timeoutMs is an ok:false result for the model, in about that time", async () => {
    const started = Date.now();
    expect(await exec.run(call("slow_quote", {}))).toMatchObject({ ok: false, output: { error: "tool slow_quote timed out after 300 ms" } });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("timeout - a side-effect tool that never answers ends the attempt with a retryable outcome-unknown error, not a hang", async () => {
    const c = call("charge_card", { amount: 100 });
    const started = Date.now();
    const err = await exec.run(c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolOutcomeUnknownError);
    expect(isRetryable(err)).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await store.toolCallStarted(c.idempotencyKey, c.taskId, c.step, c.tool)).toEqual({ starts: 2, outcome: null });
  });
});

describe("service tools - embedded: the same service in the executor's own broker", () => {
  let b: ServiceBroker;
  let exec: ToolExecutor;

  beforeAll(async () => {
    b = new ServiceBroker({ nodeID: "embedded", logger: false });
    b.createService(paymentsService("embedded"));
    await b.start();
    const source = new ServiceToolSource(brokerDirectory(b), { warn: () => undefined });
    exec = new ToolExecutor({ sources: [source], agents: new AgentCatalog([AGENT]), ledger: store, maxUnknownOutcomes: 5, logger: { warn: () => undefined } });
  });

  afterAll(async () => {
    await b.stop();
  });

  it("embedded - discovered and called in the one broker, meta included", async () => {
    expect((await exec.specs("shop", AGENT.tools)).map((s) => s.name)).toEqual(["quote", "slow_quote", "charge_card"]);
    const c = call("quote", { amount: 2 });
    expect(await exec.run(c)).toMatchObject({ ok: true, output: { node: "embedded", total: 4 } });
    expect(reached.at(-1)?.meta).toMatchObject({ idempotencyKey: c.idempotencyKey, taskId: c.taskId });
  });
});
