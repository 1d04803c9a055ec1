/**
 * `planner`: consumes wake-ups from channel `tasks.ready` (group `planners`) and
 * runs the agent loop, one task per slot (`maxInFlight` = slots). Model calls go
 * to `rate-gateway`, tool calls to `executor`, checkpoints to `checkpoint`.
 */
import type { Context, ServiceSchema } from "moleculer";
import { TaskWorker } from "../src/agent/taskWorker";
import type { AgentDefinition } from "../src/agent/definition";
import type { AttemptInterceptor } from "../src/agent/interceptors";
import { WakeUpSchema } from "../src/contracts";
import { messageOf } from "../src/errors";
import { PriceTable } from "../src/llm/pricing";
import { channelSender } from "../src/queue/channels";
import { plannerConsumer, TASKS_READY_CHANNEL, WakeUps } from "../src/queue/wakeups";
import type { CompleteResponse, ToolSpec } from "../src/contracts";
import type { Resources } from "../src/node/resources";
import { consumerId, subscriptionState } from "../src/queue/subscription";
import { ConsumeWatchdog } from "../src/health/watchdog";
import { RemoteTaskStore } from "../src/store/remoteStore";
import type { Metrics } from "../src/telemetry/metrics";
import type { ToolResult } from "../src/contracts";

export class ShutdownSignal extends Error {
  constructor() {
    super("planner is shutting down");
    this.name = "ShutdownSignal";
  }
}

export function plannerService(resources: Resources, metrics: Metrics): ServiceSchema {
  const { config } = resources;
  let worker: TaskWorker | undefined;
  let watchdog: ConsumeWatchdog | undefined;
  return {
    name: "planner",
    channels: {
      [TASKS_READY_CHANNEL]: {
        ...plannerConsumer(config),
        async handler(this: { logger: Context["broker"]["logger"] }, payload: unknown) {
          watchdog?.begin();
          try {
            const parsed = WakeUpSchema.safeParse(payload);
            if (!parsed.success) {
              this.logger.warn({ event: "wakeup.invalid", payload }, "dropping a malformed wake-up");
              return;
            }
            if (!worker) throw new Error("planner is not started");
            await worker.handle(parsed.data.taskId, parsed.data.traceparent);
          } finally {
            watchdog?.end();
          }
        },
      },
    },
    methods: {
      /** Stops taking work, lets running tasks reach a step boundary, releases them. */
      async drain(timeoutMs: number): Promise<boolean> {
        watchdog?.drain();
        if (!worker) return true;
        worker.stop(new ShutdownSignal());
        return worker.drain(timeoutMs);
      },
    },
    created() {
      const broker = this.broker;
      const store = new RemoteTaskStore((action, params) => broker.call(action, params));
      const wakeUps = new WakeUps(channelSender(broker), this.logger);
      const specCache = new Map<string, Promise<ToolSpec[]>>();
      const emit = (event: string, payload: Record<string, unknown>) => {
        broker.emit(event, payload).catch((err: unknown) => this.logger.warn({ event: "emit.failed", err: messageOf(err) }, "event emit failed"));
      };
      // Each checkpoint is progress (the stall watchdog), a step in the metrics and a `task.step` event.
      const plannerSteps: AttemptInterceptor = {
        name: "planner-steps",
        stepCheckpointed: (e) => {
          watchdog?.progress();
          metrics.stepCheckpointed({ agent: e.agent ?? "unknown", prompt_version: e.prompt_version ?? "unknown" }, e.kind);
          emit("task.step", { ...e });
        },
      };
      worker = new TaskWorker(
        {
          store,
          leases: resources.leases(),
          agents: resources.agents,
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
          prices: new PriceTable(config.prices),
          logger: this.logger,
          // Task and step series are recorded here, in the planner that runs the task; events carry the same labels.
          metrics,
          interceptors: [plannerSteps],
        },
        {
          owner: broker.nodeID,
          leaseTtlMs: config.lease.ttlMs,
          leaseRenewMs: config.lease.renewMs,
          maxAttempts: config.retries.maxAttempts,
          defaultMaxSteps: config.planner.defaultMaxSteps,
        },
        {
          onStarted: (taskId, attempt, resumedAtStep, labels) => emit("task.started", { taskId, ...labels, attempt, resumedAtStep, nodeID: broker.nodeID }),
          onSettled: (taskId, outcome, detail, labels) => {
            if (outcome === "succeeded") emit("task.succeeded", { taskId, ...labels });
            else if (outcome === "failed") emit("task.failed", { taskId, ...labels, error: detail?.kind === "failed" ? detail.error : undefined });
            else emit("task.released", { taskId, ...labels, outcome });
            // A graceful release (shutdown) hands the task on at once. Left to the reaper, it would wait for
            // the queue to drain first, then queue behind everything else.
            if (outcome === "released" && detail?.kind === "interrupted") {
              void wakeUps.publish({ taskId, reason: "released" });
            }
          },
          onLeaseLost: (taskId, labels) => emit("task.lease_lost", { taskId, ...labels, nodeID: broker.nodeID }),
        },
      );
    },
    started() {
      const broker = this.broker;
      const adapter = () => (broker as unknown as { channelAdapter?: unknown }).channelAdapter;
      const id = consumerId(adapter(), broker.nodeID, "planner", TASKS_READY_CHANNEL);
      watchdog = new ConsumeWatchdog({
        stallAfterMs: config.health.plannerStallMs,
        subscription: () => subscriptionState(adapter(), id),
        onStall: (i) => this.logger.warn({ event: "planner.stalled", ...i }, "planner stalled: tasks in flight and no progress"),
        onRecover: (i) => this.logger.info({ event: "planner.recovered", ...i }, "planner making progress again"),
      });
      watchdog.start();
      const wd = watchdog;
      resources.health.register("planner", () => (worker ? wd.check() : { ok: false, reason: "task worker not created" }));
      metrics.attachLeaseSource(() => worker?.activeTasks ?? 0);
    },
    async stopped() {
      resources.health.unregister("planner");
      watchdog?.stop();
      metrics.attachLeaseSource(undefined);
      if (worker) {
        worker.stop(new ShutdownSignal());
        await worker.drain(config.shutdownGraceMs);
      }
    },
  };
}
