/**
 * side effects at most once - a user's side-effect tool (a ClawfleetTools
 * service on its own broker, over NATS) that commits its effect only AFTER the
 * executor's timeout for it has passed. The task runs in a real TaskWorker with
 * a real store and leases; the model is scripted to do what a model does with a
 * failed call: call the tool again, at a new step, under a new key.
 *
 * Before the ledger, the timeout reached the model as an error and the retry
 * committed a second effect. Now the timeout is an unknown outcome: the attempt
 * ends, the same step is dispatched again under the same key (the planner's
 * retry, driven here as the reaper would), the tool dedupes on the key, and the
 * model sees one call with one answer: exactly one effect.
 */
import { randomUUID } from "node:crypto";
import { ServiceBroker, type Context } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClawfleetTools } from "../../mixins";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import { TaskWorker } from "../../src/agent/taskWorker";
import type { MessageParam } from "../../src/contracts";
import { ClawfleetRegenerator } from "../../src/errors";
import { MemoryLeaseManager } from "../../src/lease/memory";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse } from "../../src/llm/scriptedModel";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { ToolExecutor } from "../../src/tools/executor";
import { brokerDirectory, ServiceToolSource } from "../../src/tools/sources/services";
import { useMemoryStore } from "../helpers/memoryStore";
import { hasService, NATS_TEST_URL, uniqueId } from "../helpers/services";

const TIMEOUT_MS = 200;
/** The effect lands this long after the first call: well past the executor's timeout. */
const COMMIT_AFTER_MS = 600;

const AGENT = parseAgentFile(
  ["---", "name: router", "tools: [route_order]", "tiers:", "  t:", "    model: m", "    max_tokens: 100", "default_tier: t", "---", "Route the order once.", ""].join("\n"),
  "inline:router.md",
);

/** The world the tool changes: one routing per idempotency key, committed late. */
const effects = new Map<string, { confirmation: string }>();
const calls: string[] = [];

const routerService = {
  name: "router",
  mixins: [ClawfleetTools],
  actions: {
    route: {
      tool: {
        name: "route_order",
        description: "Routes an order to a warehouse.",
        sideEffect: true,
        timeoutMs: TIMEOUT_MS,
        input: { type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] },
      },
      async handler(ctx: Context<{ order_id: string }, { idempotencyKey: string }>) {
        const key = ctx.meta.idempotencyKey;
        calls.push(key);
        // Deduped on the key, as a side-effect tool must: a call of a committed key answers what was done.
        const done = effects.get(key);
        if (done) return done;
        committing.set(key, committing.get(key) ?? commitLater(key));
        return committing.get(key);
      },
    },
  },
};
const committing = new Map<string, Promise<{ confirmation: string }>>();
async function commitLater(key: string): Promise<{ confirmation: string }> {
  await new Promise((r) => setTimeout(r, COMMIT_AFTER_MS));
  const effect = { confirmation: `RT-${effects.size + 1}` };
  effects.set(key, effect);
  return effect;
}

/** A model that routes the order and, like a real one, calls the tool again when it hears the call failed. */
function routingModel(): ScriptedModel {
  let n = 0;
  const lastResult = (messages: readonly MessageParam[]) => {
    const last = messages.at(-1);
    if (!last || typeof last.content === "string") return undefined;
    return last.content.find((b) => b.type === "tool_result");
  };
  return new ScriptedModel((req) => {
    const result = lastResult(req.messages);
    if (result === undefined || ("is_error" in result && result.is_error === true)) {
      n++;
      return { content: [text("Routing the order."), toolUse(`tu_route_${n}`, "route_order", { order_id: "ORD-1042" })] };
    }
    return { content: [text(`Routed: ${JSON.stringify(result.content)}`)] };
  });
}

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

describe.skipIf(!hasService("nats"))("side effects at most once - a tool that commits after its timeout", () => {
  const namespace = uniqueId("once");
  const brokerOf = (nodeID: string) =>
    new ServiceBroker({ namespace, nodeID, transporter: NATS_TEST_URL, logger: false, errorRegenerator: new ClawfleetRegenerator(), requestTimeout: 0 });
  const tools = brokerOf("tools");
  const executorNode = brokerOf("executor");
  let exec: ToolExecutor;

  beforeAll(async () => {
    tools.createService(routerService);
    await Promise.all([tools.start(), executorNode.start()]);
    await executorNode.waitForServices("router", 10_000);
    const source = new ServiceToolSource(brokerDirectory(executorNode), { warn: () => undefined });
    exec = new ToolExecutor({ sources: [source], agents: new AgentCatalog([AGENT]), ledger: store, maxUnknownOutcomes: 5, logger: { warn: () => undefined } });
  });

  afterAll(async () => {
    await Promise.all([tools.stop(), executorNode.stop()]);
  });

  it("once - the timed-out call is asked again under the same key, never afresh: one effect, one tool step, the task succeeds", async () => {
    const model = routingModel();
    const worker = new TaskWorker(
      {
        store,
        leases: new MemoryLeaseManager(),
        agents: new AgentCatalog([AGENT]),
        llm: model,
        tools: exec,
        toolSpecs: (agent) => exec.specs(agent.name, agent.tools),
        prices: new PriceTable(),
        logger: { info: () => undefined, warn: () => undefined },
      },
      // Retried at once (no backoff): each wake-up below is the next attempt.
      { owner: "planner-a", leaseTtlMs: 10_000, leaseRenewMs: 3_000, maxAttempts: 10, defaultMaxSteps: 20, retryBackoff: { baseMs: 0, maxMs: 0 } },
    );
    const id = randomUUID();
    await store.createTask({ id, agent: "router", input: { order_id: "ORD-1042" }, priority: "normal", metadata: {}, prompt_version: "test" });

    // Each wake-up is one attempt; a released task gets another, as the reaper would publish.
    const outcomes: string[] = [];
    for (let i = 0; i < 10 && !["succeeded", "failed"].includes(outcomes.at(-1) ?? ""); i++) outcomes.push(await worker.handle(id));

    const task = await store.getTask(id);
    expect(task?.status, JSON.stringify(task?.error)).toBe("succeeded");
    // The first attempt ended on the unknown outcome, not on an error the model read.
    expect(outcomes[0]).toBe("released");
    expect(effects.size).toBe(1);
    const key = `${id}:2`;
    expect([...effects.keys()]).toEqual([key]);
    expect(new Set(calls)).toEqual(new Set([key]));
    expect(calls.length).toBeGreaterThanOrEqual(2);

    const steps = await store.listSteps(id);
    const toolSteps = steps.filter((s) => s.kind === "tool");
    expect(toolSteps).toHaveLength(1);
    expect(toolSteps[0]?.data).toMatchObject({ tool: "route_order", ok: true, output: effects.get(key), idempotency_key: key });
    // The model asked for the tool once and heard back once.
    expect(model.requests).toHaveLength(2);
    expect(await store.toolCallStarted(key, id, 2, "route_order")).toMatchObject({ outcome: { ok: true, output: effects.get(key) } });
  }, 30_000);
});
