/**
 * The inventory-mcp example: its agent file loads, its MCP server (plain node,
 * offline) serves the tools the file allows, and the inputs the simulated
 * model's generic policy writes from the schemas give a coherent run.
 */
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentCatalog } from "../../src/agent/definition";
import { inputFromSchema } from "../../src/sim/schemaInput";
import { McpToolSource } from "../../src/tools/mcp";

const EXAMPLE = path.join(__dirname, "..", "..", "examples", "inventory-mcp");
const warnings: string[] = [];
const source = new McpToolSource({ logger: { info: () => undefined, warn: (_obj, msg) => warnings.push(msg) } });

afterAll(() => source.close());

describe("inventory-mcp example", () => {
  const agent = AgentCatalog.load(path.join(EXAMPLE, "prompts")).get("inventory-check");

  it("inventory-mcp example - the agent file declares the example's stdio server and allows its three tools", () => {
    expect(agent.sourceDir).toBe(path.join(EXAMPLE, "prompts"));
    expect(agent.mcpServers).toEqual({ inventory: { transport: "stdio", command: "node", args: ["../mcp/server.mjs"], env: {} } });
    expect(agent.tools).toEqual(["inventory__find_item", "inventory__stock_level", "inventory__restock_eta"]);
  });

  it("inventory-mcp example - the server offers exactly the allowed tools, read-only, in the file's order", async () => {
    const tools = await source.list(agent);
    expect(tools.map((t) => t.name)).toEqual(agent.tools);
    expect(tools.every((t) => !t.sideEffect && t.target === "mcp:inventory")).toBe(true);
    expect(warnings).toEqual([]);
  });

  it("inventory-mcp example - schema-generated inputs (the generic sim policy's) find an item, its stock, and its restock date", async () => {
    const outputs: unknown[] = [];
    for (const name of agent.tools) {
      const tool = await source.resolve(agent, name);
      const input = inputFromSchema(tool!.inputSchema);
      outputs.push(await tool!.invoke(input, { taskId: "t", step: outputs.length + 1, agent: agent.name, idempotencyKey: `t:${outputs.length + 1}`, signal: AbortSignal.timeout(5_000) }));
    }
    expect(outputs).toEqual([
      { items: [{ sku: "SKU-1002", name: "Trail running shoe", category: "footwear" }] },
      { sku: "SKU-1002", by_warehouse: { lyon: 0, porto: 12, gdansk: 3 }, total: 15 },
      { sku: "SKU-1002", warehouse: "lyon", on_hand: 0, inbound: { units: 120, eta: "2025-03-14" } },
    ]);
  });

  it("inventory-mcp example - an unknown SKU is the tool's error, for the model to read", async () => {
    const tool = await source.resolve(agent, "inventory__stock_level");
    await expect(tool!.invoke({ sku: "SKU-9999" }, { taskId: "t", step: 9, agent: agent.name, idempotencyKey: "t:9", signal: AbortSignal.timeout(5_000) })).rejects.toThrow(
      "MCP tool inventory__stock_level failed: no item with SKU SKU-9999; find_item gives the SKUs",
    );
  });
});
