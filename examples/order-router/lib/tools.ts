/**
 * The order-router's four tools, as plain functions with their input schemas
 * and descriptions (what the model reads to decide when to use each one and
 * what comes back). services/order-router.service.ts serves them as Moleculer
 * actions; nothing here knows Moleculer.
 */
import { z } from "zod";
import { REGIONS, checkStock, findOrder, findWarehouse, warehousesIn, type InventoryCheck, type Order, type Region } from "./data";
import type { OrderRoutes, RouteConfirmation } from "./routes";

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

export const LookupOrderInput = z.object({ order_id: OrderId });
export const ListWarehousesInput = z.object({ region: z.enum(REGIONS).describe("The order's delivery region, as lookup_order reports it.") });
export const CheckInventoryInput = z.object({ warehouse_id: WarehouseId, items: Items });
export const RouteOrderInput = z.object({ order_id: OrderId, warehouse_id: WarehouseId });

export const DESCRIPTIONS = {
  lookup_order:
    "Look up an order by id. Returns the customer, the delivery region and the line items (sku, quantity). Fails if the order does not exist.",
  list_warehouses: "List the warehouses that serve a region, nearest first. Prefer the nearest warehouse that can fill the whole order.",
  check_inventory:
    "Check whether one warehouse has enough stock for all the given items. Returns can_fill and, when it cannot, the shortfall per SKU. Call it for several warehouses at once to compare them.",
  route_order:
    "Route an order to a warehouse for fulfilment. This is the action that commits the order: call it once per order, only for a warehouse whose check_inventory said can_fill. Returns a confirmation.",
} as const;

export function lookupOrder({ order_id }: z.output<typeof LookupOrderInput>): Order {
  const order = findOrder(order_id);
  if (!order) throw new Error(`order ${order_id} not found`);
  return order;
}

export function listWarehouses({ region }: z.output<typeof ListWarehousesInput>): { region: Region; warehouses: Array<{ warehouse_id: string; name: string; city: string; distance_km: number }> } {
  return {
    region,
    warehouses: warehousesIn(region).map((w) => ({ warehouse_id: w.warehouse_id, name: w.name, city: w.city, distance_km: w.distance_km })),
  };
}

export function checkInventory({ warehouse_id, items }: z.output<typeof CheckInventoryInput>): InventoryCheck {
  if (!findWarehouse(warehouse_id)) throw new Error(`unknown warehouse ${warehouse_id}`);
  return checkStock(warehouse_id, items);
}

/** The side effect: checked first (a refusal changes nothing), then recorded once under the call's idempotency key. */
export async function routeOrder(
  routes: OrderRoutes,
  { order_id, warehouse_id }: z.output<typeof RouteOrderInput>,
  call: { idempotencyKey: string; taskId: string },
): Promise<RouteConfirmation> {
  const order = findOrder(order_id);
  if (!order) throw new Error(`order ${order_id} not found`);
  const warehouse = findWarehouse(warehouse_id);
  if (!warehouse) throw new Error(`unknown warehouse ${warehouse_id}`);
  if (warehouse.region !== order.region) throw new Error(`warehouse ${warehouse_id} serves ${warehouse.region}, but order ${order_id} ships to ${order.region}`);
  const stock = checkStock(warehouse_id, order.items);
  if (!stock.can_fill)
    throw new Error(`warehouse ${warehouse_id} cannot fill order ${order_id}: short of ${stock.shortfall.map((s) => `${s.sku} (missing ${s.missing})`).join(", ")}`);
  return routes.route({ idempotencyKey: call.idempotencyKey, taskId: call.taskId, orderId: order_id, warehouseId: warehouse_id });
}
