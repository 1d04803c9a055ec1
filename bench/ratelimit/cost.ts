/**
 * Cost per task of the tiered order-router (classify on the cheap tier, escalate
 * what is not simple) against the same agent forced entirely onto the large
 * model, on a mixed workload where most orders are simple. Both run the real
 * agent loop (runLoop) with the real tools and store (PGlite) over the official
 * SDK against the simulated model; prices are the built-in table.
 */
import { randomUUID } from "node:crypto";
import { AgentCatalog, type AgentDefinition } from "../../src/agent/definition";
import { runLoop, type LoopDeps } from "../../src/agent/runLoop";
import { AnthropicGateway } from "../../src/llm/anthropicGateway";
import { PriceTable } from "../../src/llm/pricing";
import { startSimServer } from "../../src/sim";
import { isSimpleOrder, routes as orderRouterPolicies } from "../../examples/order-router/sim/policies";
import { openStore } from "../../src/store/pgTaskStore";
import { expectedRouting, orderIds } from "../../examples/order-router/lib/data";
import { migrateOrderRoutes, ORDER_ROUTER_PROMPTS, orderRouterRegistry } from "../../testkit/orderRouter";

export interface CostResult {
  tasks: number;
  simpleShare: number;
  tiered: { costPerTask: number; completion: number; correct: number; byModel: Record<string, number> };
  forced: { costPerTask: number; completion: number; correct: number; byModel: Record<string, number> };
}

/** The first `n` orders of the seeded world mixed `simpleShare` simple to the rest, deterministically. */
export function mixedWorkload(n: number, simpleShare: number): string[] {
  const ids = orderIds();
  const simple = ids.filter((o) => isSimpleOrder(o));
  const complex = ids.filter((o) => !isSimpleOrder(o));
  const nSimple = Math.round(n * simpleShare);
  const picked = [...simple.slice(0, nSimple), ...complex.slice(0, n - nSimple)];
  // Interleave so neither kind bunches up.
  return picked.map((o, i) => ({ o, k: (i * 7919) % picked.length })).sort((a, b) => a.k - b.k).map((x) => x.o);
}

export async function runCostBench(n: number, simpleShare: number): Promise<CostResult> {
  const sim = await startSimServer({ policies: orderRouterPolicies });
  const opened = await openStore({ dataDir: "memory://" });
  try {
    await migrateOrderRoutes(opened.pool);
    const registry = orderRouterRegistry(opened.pool);
    const tiered = AgentCatalog.load(ORDER_ROUTER_PROMPTS).get("order-router");
    const forced: AgentDefinition = { ...tiered, router: undefined };
    const gw = new AnthropicGateway({ apiKey: "bench", baseURL: sim.url, maxRetries: 0 });
    const deps: LoopDeps = {
      store: opened.store,
      llm: { complete: (req) => gw.complete(req) },
      tools: registry,
      toolSpecs: async (a) => registry.specs(a.tools),
      prices: new PriceTable(),
      logger: { info: () => {}, warn: () => {} },
    };
    const orders = mixedWorkload(n, simpleShare);
    const measure = async (agent: AgentDefinition) => {
      let cost = 0;
      let completed = 0;
      let correct = 0;
      const byModel: Record<string, number> = {};
      for (let i = 0; i < orders.length; i += 8) {
        await Promise.all(
          orders.slice(i, i + 8).map(async (order) => {
            const id = randomUUID();
            await opened.store.createTask({ id, agent: agent.name, input: { order_id: order }, priority: "normal", metadata: {}, prompt_version: agent.promptVersion });
            const claim = await opened.store.claimTask(id, "bench");
            if (!claim) throw new Error("claim failed");
            const out = await runLoop(deps, { task: claim.task, fence: claim.fence, agent, defaultMaxSteps: 40, signal: new AbortController().signal });
            const task = await opened.store.getTask(id);
            cost += task?.usage.cost_usd ?? 0;
            for (const s of await opened.store.listSteps(id))
              if (s.kind === "llm") byModel[s.data.model] = (byModel[s.data.model] ?? 0) + s.data.usage.cost_usd;
            if (out.kind === "succeeded") {
              completed++;
              const want = expectedRouting(order);
              const got = out.result as { routed?: unknown; warehouse_id?: unknown };
              if (got.routed === want.routed && (got.warehouse_id ?? null) === want.warehouse_id) correct++;
            }
          }),
        );
      }
      return { costPerTask: cost / orders.length, completion: completed / orders.length, correct: correct / orders.length, byModel };
    };
    return { tasks: n, simpleShare, tiered: await measure(tiered), forced: await measure(forced) };
  } finally {
    await sim.close();
    await opened.close();
  }
}

if (require.main === module) {
  const share = Number(process.argv[2] ?? 0.9);
  void runCostBench(Number(process.argv[3] ?? 200), share).then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`));
}
