/**
 * The order-router example (examples/order-router) for tests and benchmarks
 * that play its agent without a cluster: its tools in an in-process registry
 * (the same functions and schemas its Moleculer service serves), its table
 * migrated the way its service migrates it, and where its files are.
 */
import type pg from "pg";
import { defineTool } from "../src/tools/define";
import { ToolRegistry } from "../src/tools/registry";
import type { ToolDefinition } from "../src/tools/tool";
import type { MigrateReport } from "../src/store/migrate";
import { migrateToolService } from "../src/tools/serviceMigrations";
import { OrderRoutes, type Queryable } from "../examples/order-router/lib/routes";
import {
  CheckInventoryInput,
  DESCRIPTIONS,
  ListWarehousesInput,
  LookupOrderInput,
  RouteOrderInput,
  checkInventory,
  listWarehouses,
  lookupOrder,
  routeOrder,
} from "../examples/order-router/lib/tools";
import { ORDER_ROUTER_MIGRATIONS, ORDER_ROUTER_SERVICE_NAME } from "./examples";

export { ORDER_ROUTER_PROMPTS } from "./examples";

/** The four tools over `routes`, as in-process tools. */
export function orderRouterTools(routes: OrderRoutes): ToolDefinition[] {
  return [
    defineTool({ name: "lookup_order", description: DESCRIPTIONS.lookup_order, input: LookupOrderInput, run: lookupOrder }),
    defineTool({ name: "list_warehouses", description: DESCRIPTIONS.list_warehouses, input: ListWarehousesInput, run: listWarehouses }),
    defineTool({ name: "check_inventory", description: DESCRIPTIONS.check_inventory, input: CheckInventoryInput, run: checkInventory }),
    defineTool({
      name: "route_order",
      description: DESCRIPTIONS.route_order,
      input: RouteOrderInput,
      sideEffect: true,
      run: (input, ctx) => {
        ctx.signal.throwIfAborted();
        return routeOrder(routes, input, ctx);
      },
    }),
  ];
}

/** A registry holding the order router's tools, their effects recorded in `db`. */
export function orderRouterRegistry(db: Queryable, registry = new ToolRegistry()): ToolRegistry {
  for (const tool of orderRouterTools(new OrderRoutes(db))) registry.register(tool);
  return registry;
}

/** Creates the example's table in `pool`, as its service does when it starts. */
export function migrateOrderRoutes(pool: pg.Pool): Promise<MigrateReport> {
  return migrateToolService(pool, ORDER_ROUTER_SERVICE_NAME, ORDER_ROUTER_MIGRATIONS);
}

export { OrderRoutes, type Queryable };
