/**
 * `planner`: consumes wake-ups from channel `tasks.ready` (group `planners`) and
 * runs the agent loop, one task per slot (`maxInFlight` = slots). Model calls go
 * to `rate-gateway`, tool calls to `executor`, checkpoints to `checkpoint`.
 */
import type { Context, ServiceSchema } from "moleculer";
import { TaskWorker } from "../src/agent/taskWorker";
import type { AgentDefinition } from "../src/agent/definition";
import { PLANNERS_GROUP, TASKS_READY_CHANNEL, WakeUpSchema } from "../src/domain";
import { messageOf } from "../src/errors";
import { PriceTable } from "../src/llm/pricing";
import type { CompleteResponse, ToolSpec } from "../src/llm/types";
import type { Resources } from "../src/runtime/resources";
import { RemoteTaskStore } from "../src/store/remoteStore";
import type { ToolResult } from "../src/tools/types";

export class ShutdownSignal extends Error {
  constructor() {
    super("planner is shutting down");
    this.name = "ShutdownSignal";
  }
}

export function plannerService(res: Resources): ServiceSchema {
  const { config } = res;
  let worker: TaskWorker | undefined;
  let lastConsumeAt = Date.now();
  return {
    name: "planner",
    channels: {
      [TASKS_READY_CHANNEL]: {
        group: PLANNERS_GROUP,
        maxInFlight: config.planner.slots,
        // The handler does not throw for a task's own failure (that is recorded on the task); a throw means
        // infrastructure trouble, and the reaper re-publishes the task anyway.
        maxRetries: 3,
        deadLettering: { enabled: true, queueName: "tasks.dead" },
        async handler(this: { logger: Context["broker"]["logger"] }, payload: unknown) {
          lastConsumeAt = Date.now();
          const parsed = WakeUpSchema.safeParse(payload);
          if (!parsed.success) {
            this.logger.warn({ event: "wakeup.invalid", payload }, "dropping a malformed wake-up");
            return;
          }
          if (!worker) throw new Error("planner is not started");
          await worker.handle(parsed.data.taskId);
        },
      },
    },
    methods: {
      /** Stops taking work, lets running tasks reach a step boundary, releases them. */
      async drain(timeoutMs: number): Promise<boolean> {
        if (!worker) return true;
        worker.stop(new ShutdownSignal());
        return worker.drain(timeoutMs);
      },
    },
    created() {
      const broker = this.broker;
      const store = new RemoteTaskStore((action, params) => broker.call(action, params));
      const specCache = new Map<string, Promise<ToolSpec[]>>();
      const emit = (event: string, payload: Record<string, unknown>) => {
        broker.emit(event, payload).catch((err: unknown) => this.logger.warn({ event: "emit.failed", err: messageOf(err) }, "event emit failed"));
      };
      worker = new TaskWorker(
        {
          store,
          leases: res.leases(),
          agents: res.agents,
          llm: { complete: (req) => broker.call<CompleteResponse, typeof req>("rate-gateway.complete", req, { timeout: 0 }) },
          tools: { run: (call) => broker.call<ToolResult, typeof call>("executor.run", call, { timeout: 120_000 }) },
          toolSpecs: (agent: AgentDefinition) => {
            let specs = specCache.get(agent.promptVersion);
            if (!specs) {
              specs = broker.call<ToolSpec[], { names: string[] }>("executor.specs", { names: agent.tools });
              specCache.set(agent.promptVersion, specs);
              specs.catch(() => specCache.delete(agent.promptVersion));
            }
            return specs;
          },
          prices: new PriceTable(),
          logger: this.logger,
          onStep: (e) => emit("task.step", { ...e }),
        },
        {
          owner: broker.nodeID,
          leaseTtlMs: config.lease.ttlMs,
          leaseRenewMs: config.lease.renewMs,
          maxAttempts: config.retries.maxAttempts,
          defaultMaxSteps: config.planner.defaultMaxSteps,
        },
        {
          onStarted: (taskId, attempt, resumedAtStep) => emit("task.started", { taskId, attempt, resumedAtStep, nodeID: broker.nodeID }),
          onSettled: (taskId, outcome, detail) => {
            if (outcome === "succeeded") emit("task.succeeded", { taskId });
            else if (outcome === "failed") emit("task.failed", { taskId, error: detail?.kind === "failed" ? detail.error : undefined });
            else emit("task.released", { taskId, outcome });
          },
          onLeaseLost: (taskId) => emit("task.lease_lost", { taskId, nodeID: broker.nodeID }),
        },
      );
    },
    started() {
      lastConsumeAt = Date.now();
      res.health.register("planner", () => ({ ok: worker !== undefined }));
      void lastConsumeAt;
    },
    async stopped() {
      res.health.unregister("planner");
      if (worker) {
        worker.stop(new ShutdownSignal());
        await worker.drain(config.shutdownGraceMs);
      }
    },
  };
}
