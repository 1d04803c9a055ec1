/**
 * `executor`: the tool registry. Tool failures and bad input from the model come
 * back as `ok: false` results; only infrastructure errors are thrown (retryable).
 */
import type { Context, ServiceSchema } from "moleculer";
import type { Resources } from "../src/runtime/resources";
import { Executor, parseParams } from "../src/rpc";
import { registerOrderRouterTools } from "../src/tools/orderRouter/tools";
import { OrderRoutes } from "../src/tools/orderRouter/backend";
import { ToolRegistry } from "../src/tools/registry";

export function executorService(res: Resources): ServiceSchema {
  const registry = new ToolRegistry();
  return {
    name: "executor",
    actions: {
      run: {
        handler: (ctx: Context) => registry.run(parseParams(Executor.run, ctx.params, "executor.run")),
      },
      specs: {
        handler: (ctx: Context) => {
          const p = parseParams(Executor.specs, ctx.params, "executor.specs");
          return registry.specs(p.names.filter((n) => registry.has(n)));
        },
      },
    },
    async started() {
      const { pool } = await res.database();
      registerOrderRouterTools(registry, new OrderRoutes(pool));
      res.health.register("executor");
    },
    stopped() {
      res.health.unregister("executor");
    },
  };
}
