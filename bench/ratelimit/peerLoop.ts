/**
 * The order-router agent as a peer would write it without Clawfleet: the
 * official SDK, the same system prompt, tools and messages, a plain loop. The
 * tools are the real ones (seeded data); routing is recorded in memory.
 */
import fs from "node:fs";
import path from "node:path";
import type Anthropic from "@anthropic-ai/sdk";
import { parseAgentFile } from "../../src/agent/definition";
import { ORDER_ROUTER_PROMPTS, orderRouterRegistry, type Queryable } from "../../testkit/orderRouter";

type Create = (params: Anthropic.MessageCreateParamsNonStreaming) => Promise<Anthropic.Message>;

/** An in-memory stand-in for the order_routes table: idempotent by key, like the real one. */
function memoryRoutesDb(): Queryable {
  const rows = new Map<string, Record<string, unknown>>();
  return {
    query: async (text: string, params?: unknown[]) => {
      const p = params ?? [];
      if (text.trimStart().startsWith("INSERT")) {
        const key = String(p[0]);
        if (rows.has(key)) return { rows: [], rowCount: 0 };
        rows.set(key, { order_id: p[2], warehouse_id: p[3], confirmation: p[4], routed_at: new Date() });
        return { rows: [], rowCount: 1 };
      }
      const row = rows.get(String(p[0]));
      return { rows: row ? [row] : [], rowCount: row ? 1 : 0 };
    },
  };
}

export function orderRouterPeer(create: Create) {
  const agent = parseAgentFile(fs.readFileSync(path.join(ORDER_ROUTER_PROMPTS, "order-router.md"), "utf8"), "order-router.md");
  const tier = agent.tiers[agent.defaultTier];
  if (!tier) throw new Error("order-router has no default tier");
  const registry = orderRouterRegistry(memoryRoutesDb());
  const tools = registry.specs(agent.tools) as Anthropic.Tool[];

  return async function runTask(taskId: string, orderId: string): Promise<unknown> {
    const messages: Anthropic.MessageParam[] = [{ role: "user", content: JSON.stringify({ order_id: orderId }) }];
    let step = 1;
    while (step <= (agent.maxSteps ?? 30)) {
      const msg = await create({ model: tier.model, max_tokens: tier.max_tokens, system: agent.systemPrompt, tools, messages, metadata: { user_id: taskId } });
      messages.push({ role: "assistant", content: msg.content });
      const uses = msg.content.filter((b): b is Anthropic.ToolUseBlock => b.type === "tool_use");
      if (uses.length === 0) {
        const text = msg.content.flatMap((b) => (b.type === "text" ? [b.text] : [])).join("");
        return JSON.parse(text) as unknown;
      }
      const results = await Promise.all(
        uses.map((u, i) =>
          registry.run({ taskId, agent: agent.name, step: step + 1 + i, tool: u.name, toolUseId: u.id, input: u.input, idempotencyKey: `${taskId}:${step + 1 + i}` }),
        ),
      );
      messages.push({
        role: "user",
        content: uses.map((u, i) => ({
          type: "tool_result" as const,
          tool_use_id: u.id,
          content: JSON.stringify(results[i]?.output ?? null),
          ...(results[i]?.ok ? {} : { is_error: true }),
        })),
      });
      step += 1 + uses.length;
    }
    throw new Error("step budget spent");
  };
}
