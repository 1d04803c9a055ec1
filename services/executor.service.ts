/**
 * `executor`: the tool registry. Tool failures and bad input from the model come
 * back as `ok: false` results; only infrastructure errors are thrown (retryable).
 */
import type { Context, LoggerInstance, ServiceSchema } from "moleculer";
import { Executor, parseParams } from "../src/contracts";
import { messageOf } from "../src/errors";
import type { Resources } from "../src/node/resources";
import { registerOrderRouterTools } from "../src/tools/orderRouter/tools";
import { OrderRoutes } from "../src/tools/orderRouter/backend";
import { ToolRegistry } from "../src/tools/registry";
import type { Metrics } from "../src/telemetry/metrics";
import { observeToolCall } from "../src/telemetry/toolTelemetry";

export function executorService(resources: Resources, metrics: Metrics): ServiceSchema {
  const registry = new ToolRegistry();
  return {
    name: "executor",
    actions: {
      run: {
        // One `tool.executed` line per execution, with its idempotency key: operators (and the crash
        // tests) can tell a re-execution of a step from its first run.
        async handler(this: { logger: LoggerInstance }, ctx: Context) {
          const call = parseParams(Executor.run, ctx.params, "executor.run");
          const line = { event: "tool.executed", taskId: call.taskId, step: call.step, tool: call.tool, idempotencyKey: call.idempotencyKey };
          try {
            // The `execute_tool` span and the tool series, recorded here where the tool runs.
            const result = await observeToolCall(metrics, call, () => registry.run(call));
            this.logger.info({ ...line, ok: result.ok, duration_ms: result.duration_ms }, "tool executed");
            return result;
          } catch (err) {
            // An infrastructure failure (retryable): the tool may have run in part; the step is retried under the same key.
            this.logger.warn({ ...line, ok: false, err: messageOf(err) }, "tool execution failed on its back end");
            throw err;
          }
        },
      },
      specs: {
        handler: (ctx: Context) => {
          const p = parseParams(Executor.specs, ctx.params, "executor.specs");
          return registry.specs(p.names.filter((n) => registry.has(n)));
        },
      },
    },
    async started() {
      const { pool } = await resources.database();
      registerOrderRouterTools(registry, new OrderRoutes(pool));
      resources.health.register("executor");
    },
    stopped() {
      resources.health.unregister("executor");
    },
  };
}
