/**
 * `executor`: runs the tools the model asks for, wherever they live (src/tools/executor.ts).
 * Tool failures and bad input from the model come back as `ok: false` results; only what
 * the model cannot fix is thrown: an unreachable back end, or a side-effect call whose
 * outcome is unknown (retryable, the step is asked again under the same key).
 */
import type { Context, LoggerInstance, ServiceSchema } from "moleculer";
import { Executor, parseParams, TASK_CANCELLED_CONTROL_EVENT, TaskCancelledControlSchema, type ToolResult } from "../src/contracts";
import { RecentIds } from "../src/cancel";
import { CallCancelledError, messageOf, TaskCancelledError } from "../src/errors";
import type { Resources } from "../src/node/resources";
import { ToolExecutor } from "../src/tools/executor";
import { McpToolSource } from "../src/tools/mcp";
import { lendNodeResources } from "../src/tools/nodeHandle";
import { ToolRegistry } from "../src/tools/registry";
import type { ToolSource } from "../src/tools/source";
import { LocalToolSource } from "../src/tools/sources/local";
import { brokerDirectory, ServiceToolSource } from "../src/tools/sources/services";
import type { ToolDefinition } from "../src/tools/tool";
import type { Metrics } from "../src/telemetry/metrics";
import { observeToolCall } from "../src/telemetry/toolTelemetry";
import { CALL_CANCEL_EVENT, CancelRegistry } from "../src/transport/cancel";

/** `localTools`: the in-process tools (`defineTool`) this executor runs; tool services are found in the cluster. */
export function executorService(resources: Resources, metrics: Metrics, localTools: readonly ToolDefinition[] = []): ServiceSchema {
  const registry = new ToolRegistry();
  for (const tool of localTools) registry.register(tool);
  let executor: ToolExecutor | undefined;
  // Calls their planner asked to cancel (it is shutting down): ToolExecutor.run says which may stop.
  const cancels = new CancelRegistry();
  // Tasks cancelled lately: a call of one that was sent before its cancel but arrives after it is refused.
  const cancelledTasks = new RecentIds();
  const ready = (): ToolExecutor => {
    if (!executor) throw new Error("executor service is not started");
    return executor;
  };
  return {
    name: "executor",
    actions: {
      run: {
        // One `tool.executed` line per execution, with its idempotency key: operators (and the crash
        // tests) can tell a re-execution of a step from its first run.
        async handler(this: { logger: LoggerInstance }, ctx: Context): Promise<ToolResult> {
          const call = parseParams(Executor.run, ctx.params, "executor.run");
          const line = { event: "tool.executed", taskId: call.taskId, step: call.step, tool: call.tool, idempotencyKey: call.idempotencyKey };
          if (cancelledTasks.has(call.taskId)) throw new TaskCancelledError(`task ${call.taskId} was cancelled; its tool call is not run`, { taskId: call.taskId });
          const cancel = cancels.open((ctx.meta as { callId?: unknown }).callId);
          try {
            // The `execute_tool` span and the tool series, recorded here where the tool runs.
            const result = await observeToolCall(metrics, call, () => ready().run(call, cancel.signal));
            this.logger.info({ ...line, ok: result.ok, duration_ms: result.duration_ms, ...(result.replayed ? { replayed: true } : {}) }, "tool executed");
            return result;
          } catch (err) {
            // Retryable: the step is retried under the same key. A side-effect tool may have acted: the ledger knows.
            this.logger.warn({ ...line, ok: false, err: messageOf(err) }, "tool execution did not complete");
            throw err;
          } finally {
            cancel.done();
          }
        },
      },
      specs: {
        handler: (ctx: Context) => {
          const p = parseParams(Executor.specs, ctx.params, "executor.specs");
          return p.side_effects === true ? ready().describe(p.agent, p.names) : ready().specs(p.agent, p.names);
        },
      },
    },
    events: {
      [CALL_CANCEL_EVENT](ctx: Context) {
        cancels.cancel(ctx.params, new CallCancelledError("the caller cancelled the tool call"));
      },
      [TASK_CANCELLED_CONTROL_EVENT](ctx: Context) {
        const p = TaskCancelledControlSchema.safeParse(ctx.params);
        if (p.success) cancelledTasks.add(p.data.task_id);
      },
    },
    created() {
      // User services in this broker (embedded mode) reach the node's database through the ClawfleetTools mixin.
      // A node without an executor (SERVICES=tools) lends it where it builds its broker.
      lendNodeResources(this.broker, resources);
    },
    async started() {
      const db = await resources.database();
      // Where the executor finds tools: the one list of sources, asked in this order (the first that holds a name serves it).
      const sources: ToolSource[] = [
        new LocalToolSource(registry),
        new ServiceToolSource(brokerDirectory(this.broker), this.logger),
        new McpToolSource({ logger: this.logger }),
      ];
      executor = new ToolExecutor({
        sources,
        agents: resources.agents,
        ledger: db.store,
        maxUnknownOutcomes: resources.config.tools.maxUnknownOutcomes,
        logger: this.logger,
      });
      resources.health.register("executor");
    },
    async stopped() {
      resources.health.unregister("executor");
      await executor?.close();
      executor = undefined;
    },
  };
}
