/**
 * The order-router's four tools. Descriptions and schemas are what the model
 * reads, so they say when to use each tool and what comes back.
 */
import { z } from "zod";
import type { ToolRegistry } from "../registry";
import type { ToolDefinition } from "../tool";
import type { OrderRoutes } from "./backend";
import { REGIONS, checkStock, findOrder, findWarehouse, warehousesIn } from "./data";

const OrderId = z.string().regex(/^ORD-\d+$/, "an order id looks like ORD-1042").describe("The order id, e.g. ORD-1042.");
const WarehouseId = z.string().min(1).max(64).describe("A warehouse id as returned by list_warehouses, e.g. WH-DUB.");
const Items = z
  .array(
    z.object({
      sku: z.string().min(1).max(64).describe("The SKU, e.g. SKU-1007."),
      quantity: z.number().int().min(1).max(1000).describe("Units needed."),
    }),
  )
  .min(1)
  .max(50)
  .describe("The order's line items.");

/** Types `run` from the schema, then widens to the registry's element type. */
function defineTool<I, O>(def: ToolDefinition<I, O>): ToolDefinition {
  return def;
}

export function createOrderRouterTools(routes: OrderRoutes): ToolDefinition[] {
  return [
    defineTool({
      name: "lookup_order",
      description:
        "Look up an order by id. Returns the customer, the delivery region and the line items (sku, quantity). Fails if the order does not exist.",
      input: z.object({ order_id: OrderId }),
      sideEffect: false,
      run: async ({ order_id }) => {
        const order = findOrder(order_id);
        if (!order) throw new Error(`order ${order_id} not found`);
        return order;
      },
    }),
    defineTool({
      name: "list_warehouses",
      description: "List the warehouses that serve a region, nearest first. Prefer the nearest warehouse that can fill the whole order.",
      input: z.object({ region: z.enum(REGIONS).describe("The order's delivery region, as lookup_order reports it.") }),
      sideEffect: false,
      run: async ({ region }) => ({
        region,
        warehouses: warehousesIn(region).map((w) => ({ warehouse_id: w.warehouse_id, name: w.name, city: w.city, distance_km: w.distance_km })),
      }),
    }),
    defineTool({
      name: "check_inventory",
      description:
        "Check whether one warehouse has enough stock for all the given items. Returns can_fill and, when it cannot, the shortfall per SKU. Call it for several warehouses at once to compare them.",
      input: z.object({ warehouse_id: WarehouseId, items: Items }),
      sideEffect: false,
      run: async ({ warehouse_id, items }) => {
        if (!findWarehouse(warehouse_id)) throw new Error(`unknown warehouse ${warehouse_id}`);
        return checkStock(warehouse_id, items);
      },
    }),
    defineTool({
      name: "route_order",
      description:
        "Route an order to a warehouse for fulfilment. This is the action that commits the order: call it once per order, only for a warehouse whose check_inventory said can_fill. Returns a confirmation.",
      input: z.object({ order_id: OrderId, warehouse_id: WarehouseId }),
      sideEffect: true,
      run: async ({ order_id, warehouse_id }, ctx) => {
        const order = findOrder(order_id);
        if (!order) throw new Error(`order ${order_id} not found`);
        const warehouse = findWarehouse(warehouse_id);
        if (!warehouse) throw new Error(`unknown warehouse ${warehouse_id}`);
        if (warehouse.region !== order.region)
          throw new Error(`warehouse ${warehouse_id} serves ${warehouse.region}, but order ${order_id} ships to ${order.region}`);
        const stock = checkStock(warehouse_id, order.items);
        if (!stock.can_fill)
          throw new Error(
            `warehouse ${warehouse_id} cannot fill order ${order_id}: short of ${stock.shortfall.map((s) => `${s.sku} (missing ${s.missing})`).join(", ")}`,
          );
        ctx.signal.throwIfAborted();
        return routes.route({ idempotencyKey: ctx.idempotencyKey, taskId: ctx.taskId, orderId: order_id, warehouseId: warehouse_id });
      },
    }),
  ];
}

export function registerOrderRouterTools(registry: ToolRegistry, routes: OrderRoutes): ToolRegistry {
  for (const tool of createOrderRouterTools(routes)) registry.register(tool);
  return registry;
}
