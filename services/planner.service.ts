/**
 * `planner`: consumes wake-ups from channel `tasks.ready` (group `planners`) and
 * runs the agent loop, one task per slot (`maxInFlight` = slots). Model calls go
 * to `rate-gateway`, tool calls to `executor`, checkpoints to `checkpoint`.
 */
import type { Context, ServiceBroker, ServiceSchema } from "moleculer";
import { AttemptEvents, taskEventSink } from "../src/agent/events";
import { TaskWorker } from "../src/agent/taskWorker";
import { MemoryAdmission } from "../src/agent/admission";
import { RETRY_BACKOFF } from "../src/agent/settle";
import { drainWorker, shutdownPlan } from "../src/agent/shutdown";
import type { AgentDefinition } from "../src/agent/definition";
import type { AttemptInterceptor } from "../src/agent/interceptors";
import { AbortTaskParamsSchema, parseParams, typedParams, TASK_CANCELLED_CONTROL_EVENT, TaskCancelledControlSchema, WakeUpSchema, type AbortTaskAck } from "../src/contracts";
import { PriceTable } from "../src/llm/pricing";
import { channelSender } from "../src/queue/channels";
import { plannerConsumer, TASKS_READY_CHANNEL, WakeUps } from "../src/queue/wakeups";
import type { CompleteResponse, DescribedToolSpec, ToolSpecsQuery } from "../src/contracts";
import type { Resources } from "../src/node/resources";
import { consumerId, subscriptionState } from "../src/queue/subscription";
import { ConsumeWatchdog } from "../src/health/watchdog";
import { RemoteTaskStore } from "../src/store/remoteStore";
import { splitDescribedSpecs } from "../src/tools/source";
import { claimsHonouringSwitches, processSwitchBoard, SWITCH_CHANGED_EVENT, SwitchBoard, SwitchGate } from "../src/switches";
import { TenantQuotas } from "../src/tenancy";
import type { Metrics } from "../src/telemetry/metrics";
import type { ToolResult } from "../src/contracts";
import { cancellableCall, type CancellableBroker } from "../src/transport/cancel";

/** How long a planner reuses an agent's tool specs before asking the executor again. */
const TOOL_SPECS_TTL_MS = 5_000;

export class ShutdownSignal extends Error {
  constructor() {
    super("planner is shutting down");
    this.name = "ShutdownSignal";
  }
}

/** The roles every attempt calls; a wake-up waits up to ROLES_WAIT_MS for them to be known. */
const ATTEMPT_ROLES = ["checkpoint", "executor", "rate-gateway"];
const ROLES_WAIT_MS = 30_000;

/** Whether the registry knows a service (the registry's own check; its typings leave it out). */
function hasService(broker: ServiceBroker, name: string): boolean {
  return (broker.registry as unknown as { hasService(name: string): boolean }).hasService(name);
}

export function plannerService(resources: Resources, metrics: Metrics): ServiceSchema {
  const { config } = resources;
  let worker: TaskWorker | undefined;
  // The memory cap: over it, a wake-up waits before it claims a task (src/agent/admission.ts).
  let admission: MemoryAdmission | undefined;
  let watchdog: ConsumeWatchdog | undefined;
  // Kill switches: the process's board, and the gate every model and tool call passes (src/switches/).
  let board: SwitchBoard | undefined;
  let gate: SwitchGate | undefined;
  // One drain per shutdown, whoever asks first (the node's stop sequence, or the broker stopping the service).
  let draining: Promise<boolean> | undefined;
  // A shutdown also ends the wait of a wake-up for the attempt's roles (the worker then takes nothing).
  let endRoleWaits = () => {};
  const shutdown = new Promise<void>((resolve) => (endRoleWaits = resolve));
  const drainOnce = (graceMs: number, startedAt: number): Promise<boolean> => {
    endRoleWaits();
    admission?.close();
    draining ??= worker ? drainWorker(worker, shutdownPlan(graceMs), new ShutdownSignal(), startedAt) : Promise.resolve(true);
    // A call held by a paused switch has not started: its attempt is handed back now (uncounted: the worker is
    // stopping by now), as at a step boundary.
    gate?.stop(new ShutdownSignal());
    return draining;
  };
  return {
    name: "planner",
    channels: {
      [TASKS_READY_CHANNEL]: {
        ...plannerConsumer(config),
        async handler(this: { logger: Context["broker"]["logger"]; broker: Context["broker"] }, payload: unknown) {
          watchdog?.begin();
          try {
            const parsed = WakeUpSchema.safeParse(payload);
            if (!parsed.success) {
              this.logger.warn({ event: "wakeup.invalid", payload }, "dropping a malformed wake-up");
              return;
            }
            if (!worker) throw new Error("planner is not started");
            // No task is claimed before the roles every attempt calls are known: a planner that started (or lost
            // them) first would otherwise spend an attempt of each task it claimed on "service not found". The
            // wake-up waits instead; past the bound, the attempt runs and its failure is an ordinary retry.
            const missing = ATTEMPT_ROLES.filter((name) => !hasService(this.broker, name));
            if (missing.length > 0) await Promise.race([this.broker.waitForServices(missing, ROLES_WAIT_MS).catch(() => undefined), shutdown]);
            await admission?.admit();
            await worker.handle(parsed.data.taskId, parsed.data.traceparent, parsed.data.reason);
          } finally {
            watchdog?.end();
          }
        },
      },
    },
    actions: {
      /** A cancelled task's attempt here starts no call once this answers (intake calls the task's lease owner). */
      abortTask: {
        handler(ctx: Context): AbortTaskAck {
          const p = parseParams(AbortTaskParamsSchema, ctx.params, "planner.abortTask");
          if (!worker) throw new Error("planner is not started");
          return { running: worker.abortTask(p.taskId.toLowerCase(), p.reason) };
        },
      },
    },
    events: {
      // A switch changed somewhere: read them now rather than at the next refresh (a failed read is the board's to log).
      [SWITCH_CHANGED_EVENT]() {
        void board?.refresh().catch(() => undefined);
      },
      // The backstop of the direct call: reaches the planner running the task even when the call did not.
      [TASK_CANCELLED_CONTROL_EVENT](ctx: Context) {
        const p = TaskCancelledControlSchema.safeParse(ctx.params);
        if (p.success) worker?.abortTask(p.data.task_id, p.data.reason);
      },
    },
    methods: {
      /**
       * Stops taking work, lets running tasks reach a step boundary, then aborts the calls still in flight, and
       * releases every task uncounted: all within `graceMs` from `startedAt` (src/agent/shutdown.ts).
       */
      async drain(graceMs: number, startedAt?: number): Promise<boolean> {
        watchdog?.drain();
        return drainOnce(graceMs, typeof startedAt === "number" ? startedAt : Date.now());
      },
    },
    created() {
      const broker = this.broker;
      // The checkpoint writes of a run are built from what the planner validated before (the claim's fence, the
      // gateway's answers, the executor's results): a checkpoint service on this node takes them as they are.
      const store = new RemoteTaskStore((action, params) => broker.call(action, params), "checkpoint", ["appendStep", "appendSteps", "finishWithStep"]);
      // Model and tool calls a shutdown can cut short (src/transport/cancel.ts).
      const calls: CancellableBroker = {
        call: (action, params, opts) => broker.call(action, params, opts),
        broadcast: (event, payload, groups) => broker.broadcast(event, payload, groups),
        getLogger: (name) => broker.getLogger(name),
      };
      const wakeUps = new WakeUps(channelSender(broker), this.logger);
      // Tools come and go with the services that hold them (any node, any time): a spec list is kept briefly.
      // The executor says which tools are side effects; that is split off here, so the model never sees it.
      type Catalog = ReturnType<typeof splitDescribedSpecs>;
      const specCache = new Map<string, { catalog: Promise<Catalog>; until: number }>();
      const toolCatalog = (agent: AgentDefinition): Promise<Catalog> => {
        const key = `${agent.name}@${agent.promptVersion}`;
        const cached = specCache.get(key);
        if (cached && cached.until > Date.now()) return cached.catalog;
        const query: ToolSpecsQuery = { agent: agent.name, names: agent.tools, side_effects: true };
        const catalog = broker.call<DescribedToolSpec[], ToolSpecsQuery>("executor.specs", query).then(splitDescribedSpecs);
        specCache.set(key, { catalog, until: Date.now() + TOOL_SPECS_TTL_MS });
        catalog.catch(() => specCache.delete(key));
        return catalog;
      };
      // The task lifecycle events (clawfleet.task.*), emitted after the write that makes each transition.
      const events = new AttemptEvents(taskEventSink(broker, this.logger), broker.nodeID);
      // Each checkpoint is progress (the stall watchdog), a step in the metrics and a `clawfleet.task.step` event.
      const plannerSteps: AttemptInterceptor = {
        name: "planner-steps",
        stepCheckpointed: (e) => {
          watchdog?.progress();
          metrics.stepCheckpointed({ agent: e.agent ?? "unknown", prompt_version: e.prompt_version ?? "unknown" }, e.kind);
          events.step(e);
        },
      };
      const switches = processSwitchBoard(resources, () => new SwitchBoard({ load: () => store.listSwitches(), logger: this.logger }));
      board = switches;
      gate = new SwitchGate({
        board: switches,
        logger: this.logger,
        cancel: (taskId, by, reason) => broker.call("intake.cancelTask", { taskId, by, reason }),
        onHeld: () => watchdog?.progress(),
      });
      admission = new MemoryAdmission({ maxRssBytes: config.planner.maxRssBytes, logger: this.logger, inFlight: () => worker?.activeTasks ?? 0 });
      worker = new TaskWorker(
        {
          // Claims pass over the tasks of paused agents and prompt versions.
          store: claimsHonouringSwitches(store, switches),
          leases: resources.leases(),
          agents: resources.agents,
          wakeUps,
          // An aborted model call is abandoned at once (its answer would only be thrown away) and cancelled at the gateway.
          llm: { complete: (req, signal) => cancellableCall<CompleteResponse, typeof req>(calls, "rate-gateway.complete", typedParams({ ...req }), signal, { timeout: 0, groups: ["rate-gateway"] }) },
          // A tool call is not abandoned: the executor stops it only if it has no side effects, else its outcome is awaited.
          tools: {
            run: (call, signal) =>
              cancellableCall<ToolResult, typeof call>(calls, "executor.run", call, signal, { timeout: 120_000, abandon: false, groups: ["executor"] }),
          },
          toolSpecs: async (agent: AgentDefinition) => (await toolCatalog(agent)).specs,
          sideEffectTools: async (agent: AgentDefinition) => (await toolCatalog(agent)).sideEffects,
          prices: new PriceTable(config.prices),
          logger: this.logger,
          // Task and step series are recorded here, in the planner that runs the task; events carry the same labels.
          metrics,
          interceptors: [plannerSteps, gate.interceptor],
        },
        {
          owner: broker.nodeID,
          leaseTtlMs: config.lease.ttlMs,
          leaseRenewMs: config.lease.renewMs,
          maxAttempts: config.retries.maxAttempts,
          retryBackoff: { ...RETRY_BACKOFF, baseMs: config.retries.backoffMs },
          defaultMaxSteps: config.planner.defaultMaxSteps,
          caps: new TenantQuotas(config.tenants).runningCaps(),
        },
        {
          onClaimed: (task) => events.claimed(task),
          onStarted: (taskId) => events.started(taskId),
          onSettled: (taskId, outcome, detail) => {
            events.settled(taskId, outcome, detail);
            // A graceful release (shutdown) hands the task on at once. Left to the reaper, it would wait for
            // the queue to drain first, then queue behind everything else.
            if (outcome === "released" && detail?.kind === "interrupted") {
              void wakeUps.publish({ taskId, reason: "released" });
            }
          },
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
      board?.start();
      const switches = board;
      if (switches) metrics.attachSwitchSource(() => switches.list());
    },
    async stopped() {
      resources.health.unregister("planner");
      watchdog?.stop();
      metrics.attachLeaseSource(undefined);
      await drainOnce(config.shutdownGraceMs, Date.now());
      board?.stop();
    },
  };
}
