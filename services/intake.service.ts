/**
 * `intake`: validates a submission, commits it (with its idempotency key) and
 * publishes the wake-up. The 202 goes out only after the commit; a publish that
 * fails afterwards is logged and left to the reaper, which this role also runs.
 */
import type { Context, ServiceSchema } from "moleculer";
import { z } from "zod";
import { taskEventSink } from "../src/agent/events";
import { Intake, type SubmitResult } from "../src/queue/intake";
import { channelSender } from "../src/queue/channels";
import { ReaperLoop } from "../src/queue/reaperLoop";
import { WakeUps } from "../src/queue/wakeups";
import type { Resources } from "../src/node/resources";
import { parseParams, TenantSchema } from "../src/contracts";
import { RemoteTaskStore } from "../src/store/remoteStore";
import { submitQuotaFor } from "../src/tenancy";

// `tenant`: the API key's (README, "Authentication and tenants"); callers inside the cluster may leave it out.
const SubmitParams = z.object({ body: z.unknown(), idempotencyKey: z.string().optional(), tenant: TenantSchema.optional() });
const RedriveParams = z.object({ taskId: z.string(), tenant: TenantSchema.optional() });
const DeadLetterParams = z.object({ limit: z.unknown().optional(), tenant: TenantSchema.optional() });

export function intakeService(resources: Resources): ServiceSchema {
  const { config } = resources;
  let parts: { intake: Intake; wakeUps: WakeUps } | undefined;
  let reaper: ReaperLoop | undefined;
  const created = () => {
    if (!parts) throw new Error("intake service is not created");
    return parts;
  };
  return {
    name: "intake",
    actions: {
      submit: {
        async handler(ctx: Context): Promise<SubmitResult> {
          const p = parseParams(SubmitParams, ctx.params, "intake.submit");
          return created().intake.submit(p.body, p.idempotencyKey, p.tenant);
        },
      },
      deadLetters: {
        async handler(ctx: Context) {
          const p = parseParams(DeadLetterParams, ctx.params, "intake.deadLetters");
          return created().intake.deadLetters(p.limit, p.tenant);
        },
      },
      redrive: {
        async handler(ctx: Context) {
          const { taskId, tenant } = parseParams(RedriveParams, ctx.params, "intake.redrive");
          return created().intake.redrive(taskId, tenant);
        },
      },
      agents: {
        handler: () => created().intake.agents(),
      },
    },
    created() {
      const broker = this.broker;
      const wakeUps = new WakeUps(channelSender(broker), this.logger, { dropRate: config.faults.dropWakeups });
      const store = new RemoteTaskStore((action, params) => broker.call(action, params));
      const events = { sink: taskEventSink(broker, this.logger), node: broker.nodeID };
      // The submit buckets are shared through Redis by every intake of a cluster; embedded, they are in memory.
      const submitQuota = submitQuotaFor(config.tenants, config.mode === "distributed" ? () => resources.redis() : undefined, config.namespace);
      parts = { intake: new Intake({ store, agents: resources.agents, wakeUps, events, ...(submitQuota ? { submitQuota } : {}) }), wakeUps };
    },
    started() {
      const broker = this.broker;
      reaper = new ReaperLoop(
        {
          store: (timeout) => new RemoteTaskStore((action, params) => broker.call(action, params, { timeout })),
          leases: resources.leases(),
          wakeUps: created().wakeUps,
          queueDepth: () => resources.backends.queueDepth(),
          logger: this.logger,
        },
        { owner: `${broker.nodeID}:reaper`, intervalMs: config.reaper.intervalMs, queuedAfterMs: config.reaper.queuedAfterMs },
      );
      reaper.start();
      resources.health.register("intake");
    },
    stopped() {
      resources.health.unregister("intake");
      reaper?.stop();
    },
  };
}
