/**
 * `intake`: validates a submission, commits it (with its idempotency key) and
 * publishes the wake-up. The 202 goes out only after the commit; a publish that
 * fails afterwards is logged and left to the reaper, which this role also runs.
 */
import { randomUUID } from "node:crypto";
import type { Context, LoggerInstance, ServiceBroker, ServiceSchema } from "moleculer";
import { sendToChannel, TASKS_READY_MAXLEN } from "../src/queue/channels";
import { IdempotencyKeySchema, SubmitTaskSchema, TASKS_READY_CHANNEL, type WakeUp } from "../src/domain";
import { messageOf, ValidationError } from "../src/errors";
import { Reaper } from "../src/queue/reaper";
import type { Resources } from "../src/runtime/resources";
import { parseParams } from "../src/rpc";
import { RemoteTaskStore } from "../src/store/remoteStore";
import { traceparentOf } from "../src/telemetry/spans";
import { z } from "zod";

const SubmitParams = z.object({ body: z.unknown(), idempotencyKey: z.string().optional() });

interface IntakeThis {
  broker: ServiceBroker;
  logger: LoggerInstance;
  store: RemoteTaskStore;
  publish(w: WakeUp): Promise<void>;
}

export interface SubmitResult {
  id: string;
  status: string;
  created: boolean;
  /** For the submitting request's span. */
  prompt_version: string;
}

export function intakeService(resources: Resources, waiting: () => Promise<number | undefined>): ServiceSchema {
  const { config } = resources;
  let reaperTimer: NodeJS.Timeout | undefined;
  let sweeping = false;
  return {
    name: "intake",
    actions: {
      submit: {
        async handler(this: { store: RemoteTaskStore; publishCommitted(w: WakeUp): Promise<void> }, ctx: Context): Promise<SubmitResult> {
          const p = parseParams(SubmitParams, ctx.params, "intake.submit");
          if (p.body === undefined || p.body === null || typeof p.body !== "object" || Array.isArray(p.body)) {
            throw new ValidationError("the request body must be a JSON object", { field: "body" });
          }
          const body = parseParams(SubmitTaskSchema, p.body, "invalid task");
          const key = p.idempotencyKey === undefined ? undefined : parseParams(IdempotencyKeySchema, p.idempotencyKey, "Idempotency-Key header");
          const agent = resources.agents.get(body.agent);
          // The submitting request's span, the task's trace root: stored with the task, every attempt joins its trace.
          const traceContext = traceparentOf();
          const { task, created } = await this.store.createTask(
            {
              id: randomUUID(),
              agent: agent.name,
              input: body.input,
              priority: body.priority ?? "normal",
              metadata: body.metadata ?? {},
              prompt_version: agent.promptVersion,
              ...(traceContext !== undefined ? { trace_context: traceContext } : {}),
            },
            key,
          );
          const traceparent = task.trace_context ?? undefined;
          if (created) await this.publishCommitted({ taskId: task.id, reason: "submitted", ...(traceparent !== undefined ? { traceparent } : {}) });
          return { id: task.id, status: task.status, created, prompt_version: task.prompt_version };
        },
      },
      deadLetters: {
        handler(this: { store: RemoteTaskStore }, ctx: Context) {
          const limit = Number((ctx.params as { limit?: unknown }).limit ?? 100);
          return this.store.listDeadLetters(Number.isInteger(limit) && limit > 0 ? Math.min(limit, 1000) : 100);
        },
      },
      redrive: {
        async handler(this: { store: RemoteTaskStore; publishCommitted(w: WakeUp): Promise<void> }, ctx: Context) {
          const { taskId } = parseParams(z.object({ taskId: z.string() }), ctx.params, "intake.redrive");
          const ok = await this.store.redrive(taskId);
          if (ok) await this.publishCommitted({ taskId, reason: "redrive" });
          return { taskId, redriven: ok };
        },
      },
    },
    methods: {
      /**
       * The publish that follows a commit. CLAWFLEET_FAULT_DROP_WAKEUPS skips it, as a crash between
       * the commit and the publish would: the drill that proves the reaper finds such a task.
       */
      async publishCommitted(this: IntakeThis, wakeUp: WakeUp): Promise<void> {
        if (config.faults.dropWakeups > 0 && Math.random() < config.faults.dropWakeups) {
          this.logger.warn({ taskId: wakeUp.taskId, event: "wakeup.dropped_by_fault", reason: wakeUp.reason }, "wake-up dropped by fault injection; the reaper must find the task");
          return;
        }
        await this.publish(wakeUp);
      },
      /** Publishes a wake-up; a failure is logged, not thrown: the task is committed and the reaper re-publishes it. */
      async publish(this: IntakeThis, wakeUp: WakeUp): Promise<void> {
        try {
          await sendToChannel(this.broker, TASKS_READY_CHANNEL, wakeUp, { xaddMaxLen: TASKS_READY_MAXLEN });
        } catch (err) {
          this.logger.warn({ taskId: wakeUp.taskId, event: "wakeup.publish_failed", err: messageOf(err) }, "wake-up not published; the reaper will");
        }
      },
    },
    created() {
      this.store = new RemoteTaskStore((action, params) => this.broker.call(action, params));
    },
    async started() {
      const leases = resources.leases();
      const owner = `${this.broker.nodeID}:reaper`;
      // The reaper's calls carry a deadline: a lost message (a NATS restart) must cost a sweep, never stop the reaper for good.
      const sweepCallTimeout = Math.max(10_000, config.reaper.intervalMs * 10);
      const reaperStore = new RemoteTaskStore((action, params) => this.broker.call(action, params, { timeout: sweepCallTimeout }));
      const reaper = new Reaper(
        {
          store: reaperStore,
          leases,
          publish: (w) => (this as unknown as IntakeThis).publish(w),
          waiting,
        },
        { queuedAfterMs: config.reaper.queuedAfterMs, unleasedSweeps: 2, batch: 500 },
      );
      // One reaper per cluster: the intake replica holding the reaper lease sweeps.
      const reaperTtl = Math.max(config.reaper.intervalMs * 3, 3000);
      reaperTimer = setInterval(() => {
        if (sweeping) return;
        sweeping = true;
        void (async () => {
          try {
            const mine = (await leases.renew("__reaper__", owner, reaperTtl)) || (await leases.acquire("__reaper__", owner, reaperTtl));
            if (!mine) return;
            const r = await reaper.sweep();
            if (r.requeuedQueued + r.requeuedRunning > 0) {
              this.logger.info({ event: "reaper.requeued", ...r }, "reaper re-published orphaned tasks");
            }
          } catch (err) {
            this.logger.warn({ event: "reaper.failed", err: messageOf(err) }, "reaper sweep failed");
          } finally {
            sweeping = false;
          }
        })();
      }, config.reaper.intervalMs);
      reaperTimer.unref();
      resources.health.register("intake");
    },
    async stopped() {
      resources.health.unregister("intake");
      if (reaperTimer) clearInterval(reaperTimer);
    },
  };
}
