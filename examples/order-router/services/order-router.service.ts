/**
 * The order-router's tools as a Moleculer service. With the `ClawfleetTools`
 * mixin, each action with a `tool` block is a tool that any Clawfleet executor
 * in the cluster finds and calls (this service may run in the embedded node,
 * in an executor's process, or as a `tools` role of its own, any number of
 * replicas). The action gets the model's input, already checked against the
 * schema, as its params; `ctx.meta.idempotencyKey` (`taskId:step`) is the same
 * on every execution of a step, which is what `route_order` dedupes on.
 *
 * The table `route_order` writes is this service's own: `clawfleet.migrations`
 * names the folder, applied in the node's database when the service starts.
 */
import path from "node:path";
import type { Context, ServiceSchema } from "moleculer";
import { ClawfleetTools, type ClawfleetToolsService, type ToolCallMeta } from "clawfleet/mixins";
import { OrderRoutes } from "../lib/routes";
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
} from "../lib/tools";

type Params<S extends { parse(v: unknown): unknown }> = ReturnType<S["parse"]>;

const OrderRouterTools: ServiceSchema = {
  name: "order-router-tools",
  mixins: [ClawfleetTools],
  clawfleet: { migrations: path.join(__dirname, "..", "migrations") },
  actions: {
    lookup_order: {
      tool: { description: DESCRIPTIONS.lookup_order, input: () => LookupOrderInput },
      handler: (ctx: Context<Params<typeof LookupOrderInput>>) => lookupOrder(ctx.params),
    },
    list_warehouses: {
      tool: { description: DESCRIPTIONS.list_warehouses, input: () => ListWarehousesInput },
      handler: (ctx: Context<Params<typeof ListWarehousesInput>>) => listWarehouses(ctx.params),
    },
    check_inventory: {
      tool: { description: DESCRIPTIONS.check_inventory, input: () => CheckInventoryInput },
      handler: (ctx: Context<Params<typeof CheckInventoryInput>>) => checkInventory(ctx.params),
    },
    route_order: {
      tool: { description: DESCRIPTIONS.route_order, input: () => RouteOrderInput, sideEffect: true },
      async handler(this: ClawfleetToolsService, ctx: Context<Params<typeof RouteOrderInput>, ToolCallMeta>) {
        const routes = new OrderRoutes(await this.clawfleet.database());
        return routeOrder(routes, ctx.params, ctx.meta);
      },
    },
  },
};

export default OrderRouterTools;
