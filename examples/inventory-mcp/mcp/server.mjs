#!/usr/bin/env node
/**
 * The example's MCP server (stdio): answers stock questions from the fixed data
 * set in data.mjs, offline. Three read-only tools; the agent file offers them
 * to the model as inventory__find_item, inventory__stock_level and
 * inventory__restock_eta. Each input field carries an example, so a caller that
 * only reads the schemas (the simulated model) asks about a real item.
 *
 * Run by hand to try it: `node server.mjs` speaks MCP on stdin/stdout.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";
import { INBOUND, ITEMS, STOCK, WAREHOUSES } from "./data.mjs";

const server = new McpServer({ name: "inventory", version: "1.0.0" });
const readOnly = { readOnlyHint: true, openWorldHint: false };

const Sku = z
  .string()
  .regex(/^SKU-\d{4}$/)
  .describe("The item's SKU, as find_item gives it")
  .meta({ examples: ["SKU-1002"] });

/** A result the model reads both as text and as structured content. */
const answer = (value) => ({ content: [{ type: "text", text: JSON.stringify(value) }], structuredContent: value });
const failure = (text) => ({ isError: true, content: [{ type: "text", text }] });

server.registerTool(
  "find_item",
  {
    description: "Finds catalogue items whose name or SKU contains the query (case-insensitive).",
    inputSchema: { query: z.string().min(2).describe("Part of an item's name or SKU").meta({ examples: ["trail running"] }) },
    outputSchema: { items: z.array(z.object({ sku: z.string(), name: z.string(), category: z.string() })) },
    annotations: readOnly,
  },
  async ({ query }) => {
    const q = query.toLowerCase();
    return answer({ items: ITEMS.filter((i) => i.name.toLowerCase().includes(q) || i.sku.toLowerCase().includes(q)) });
  },
);

server.registerTool(
  "stock_level",
  {
    description: "Units of an item on hand in each warehouse, and the total.",
    inputSchema: { sku: Sku },
    outputSchema: { sku: z.string(), by_warehouse: z.record(z.string(), z.number()), total: z.number() },
    annotations: readOnly,
  },
  async ({ sku }) => {
    const stock = STOCK[sku];
    if (!stock) return failure(`no item with SKU ${sku}; find_item gives the SKUs`);
    return answer({ sku, by_warehouse: stock, total: Object.values(stock).reduce((a, b) => a + b, 0) });
  },
);

server.registerTool(
  "restock_eta",
  {
    description: "The next delivery of an item to a warehouse: units and expected date, or none planned.",
    inputSchema: { sku: Sku, warehouse: z.enum(WAREHOUSES).describe("The warehouse to be restocked") },
    outputSchema: { sku: z.string(), warehouse: z.string(), on_hand: z.number(), inbound: z.object({ units: z.number(), eta: z.string() }).nullable() },
    annotations: readOnly,
  },
  async ({ sku, warehouse }) => {
    const stock = STOCK[sku];
    if (!stock) return failure(`no item with SKU ${sku}; find_item gives the SKUs`);
    return answer({ sku, warehouse, on_hand: stock[warehouse] ?? 0, inbound: INBOUND[sku]?.[warehouse] ?? null });
  },
);

await server.connect(new StdioServerTransport());
