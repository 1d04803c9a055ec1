/**
 * `intake`: validates a submission, commits it (with its idempotency key) and
 * publishes the wake-up. The 202 goes out only after the commit, and without
 * waiting for the publish; one that fails is logged and left to the reaper, which
 * this role also runs.
 */
import type { Context, ServiceSchema } from "moleculer";
import { z } from "zod";
import { taskEventSink } from "../src/agent/events";
import { Intake, type IntakeDeps, type SubmitResult } from "../src/queue/intake";
import { CreateBatcher } from "../src/queue/createBatcher";
import { channelSender } from "../src/queue/channels";
import { ReaperLoop } from "../src/queue/reaperLoop";
import { CanaryJudgeLoop } from "../src/rollout/judgeLoop";
import { canaryEventSink, Rollouts } from "../src/rollout/control";
import { messageOf } from "../src/errors";
import type { Metrics } from "../src/telemetry/metrics";
import { WakeUps } from "../src/queue/wakeups";
import type { Resources } from "../src/node/resources";
import { CANARY_EVENTS_WILDCARD, CancelTaskParamsSchema, parseParams, TASK_CANCELLED_CONTROL_EVENT, TenantSchema, type Cancelled } from "../src/contracts";
import { Canceller } from "../src/cancel";
import { ApprovalControl } from "../src/approvals";
import { DecideApprovalParamsSchema, ListApprovalsParamsSchema } from "../src/contracts";
import { RemoteTaskStore } from "../src/store/remoteStore";
import type { TaskStore } from "../src/store/types";
import { submitQuotaFor } from "../src/tenancy";
import { SetSwitchParamsSchema, SwitchChangesParamsSchema, type SwitchChangedEvent } from "../src/contracts";
import { processSwitchBoard, SWITCH_CHANGED_EVENT, SwitchBoard, SwitchControl } from "../src/switches";
import { webhookParts, type WebhookDispatcher, type WebhookParts } from "../src/webhooks";

// `tenant`: the API key's (README, "Authentication and tenants"); callers inside the cluster may leave it out.
const SubmitParams = z.object({ body: z.unknown(), idempotencyKey: z.string().optional(), tenant: TenantSchema.optional() });
const RedriveParams = z.object({ taskId: z.string(), tenant: TenantSchema.optional() });
const DeadLetterParams = z.object({ limit: z.unknown().optional(), tenant: TenantSchema.optional() });
// An agent named by the REST path: an unknown (or malformed) name is a 404, answered by the catalog.
const AgentParams = z.object({ name: z.string().max(200) });
const CanaryParams = AgentParams.extend({ body: z.unknown(), by: z.string().min(1).max(200) });
const AbortCanaryParams = AgentParams.extend({ by: z.string().min(1).max(200) });
/** How long a stopping intake waits for the wake-ups of submits it already answered. */
const WAKEUPS_SENT_WAIT_MS = 2_000;

export function intakeService(resources: Resources, metrics?: Metrics): ServiceSchema {
  const { config } = resources;
  let parts: { intake: Intake; wakeUps: WakeUps; canceller: Canceller } | undefined;
  // The database new tasks are committed to (see created()); opened at start.
  let db: TaskStore | undefined;
  const submitStore = (): TaskStore => {
    if (!db) throw new Error("intake service is not started");
    return db;
  };
  let reaper: ReaperLoop | undefined;
  // Kill switches (src/switches/): the changes are made here; the board is the process's, for its gauge.
  let switches: { control: SwitchControl; board: SwitchBoard } | undefined;
  const switchParts = () => {
    if (!switches) throw new Error("intake service is not created");
    return switches;
  };
  let judge: CanaryJudgeLoop | undefined;
  // Approval gates (src/approvals/): the pending list and the decisions; the reaper's leader applies the timeouts.
  let approvals: ApprovalControl | undefined;
  const approvalControl = () => {
    if (!approvals) throw new Error("intake service is not created");
    return approvals;
  };
  // Prompt versions and canaries (src/rollout/control.ts): routing of new tasks, and the operator's controls.
  let rollouts: Rollouts | undefined;
  let webhooks: WebhookParts | undefined;
  let dispatcher: WebhookDispatcher | undefined;
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
      // GET /v1/agents and /v1/agents/{name}, and the REPL's `agents`: versions, stable, canary, the judge's state.
      listAgents: {
        handler: () => created().intake.listAgents(),
      },
      getAgent: {
        async handler(ctx: Context) {
          const p = parseParams(AgentParams, ctx.params, "intake.getAgent");
          return created().intake.getAgent(p.name);
        },
      },
      startCanary: {
        async handler(ctx: Context) {
          const p = parseParams(CanaryParams, ctx.params, "intake.startCanary");
          return created().intake.startCanary(p.name, p.body, p.by);
        },
      },
      abortCanary: {
        async handler(ctx: Context) {
          const p = parseParams(AbortCanaryParams, ctx.params, "intake.abortCanary");
          return created().intake.abortCanary(p.name, p.by);
        },
      },
      // The api's GET and PUT /v1/switches, and the REPL's `switches` (src/switches/control.ts).
      switches: {
        handler: () => switchParts().control.list(),
      },
      setSwitch: {
        async handler(ctx: Context) {
          const p = parseParams(SetSwitchParamsSchema, ctx.params, "intake.setSwitch");
          return switchParts().control.set(p.kind, p.name, p.body, p.by);
        },
      },
      switchChanges: {
        async handler(ctx: Context) {
          const p = parseParams(SwitchChangesParamsSchema, ctx.params, "intake.switchChanges");
          return switchParts().control.history(p.limit, p.kind, p.name);
        },
      },
      /** The api's GET /v1/approvals: the calls tasks wait on (`query` as the client sent it). */
      approvals: {
        async handler(ctx: Context) {
          const p = parseParams(ListApprovalsParamsSchema, ctx.params, "intake.approvals");
          return approvalControl().pending(p.query, p.tenant);
        },
      },
      /** The api's POST /v1/tasks/{id}/approval and the REPL's `approve`: one decision on the task's pending call (`by`: who decided). */
      decideApproval: {
        async handler(ctx: Context) {
          const p = parseParams(DecideApprovalParamsSchema, ctx.params, "intake.decideApproval");
          return approvalControl().decide(p.taskId, p.body, p.by, p.tenant);
        },
      },
      /** Ends a task that has not finished (`by`: who asked); answered after its planner acknowledged, or the timeout (src/cancel/canceller.ts). */
      cancelTask: {
        async handler(ctx: Context): Promise<Cancelled> {
          return created().canceller.cancel(parseParams(CancelTaskParamsSchema, ctx.params, "intake.cancelTask"));
        },
      },
    },
    events: {
      // A canary started, stepped, was promoted, rolled back or aborted, here or elsewhere: route by it now.
      [CANARY_EVENTS_WILDCARD]() {
        void rollouts?.onControlEvent();
      },
      // A switch changed (here or on another intake): the board reads them now (a failed read is the board's to log).
      [SWITCH_CHANGED_EVENT]() {
        void switches?.board.refresh().catch(() => undefined);
      },
    },
    created() {
      const broker = this.broker;
      const wakeUps = new WakeUps(channelSender(broker), this.logger, { dropRate: config.faults.dropWakeups });
      const store = new RemoteTaskStore((action, params) => broker.call(action, params));
      // New tasks are written here, on this process's own connections to the database (the store's submit
      // connections), not through the checkpoint role: a submit's answer waits for its commit, and the hop
      // to another process and back was most of that wait. Everything else goes through the checkpoint role.
      const submits: Pick<TaskStore, "createTask" | "createTasks" | "taskByIdempotencyKey"> = {
        createTask: (task, key) => submitStore().createTask(task, key),
        createTasks: (items) => submitStore().createTasks(items),
        taskByIdempotencyKey: (key, tenant) => submitStore().taskByIdempotencyKey(key, tenant),
      };
      const intakeStore: IntakeDeps["store"] = {
        createTask: submits.createTask,
        taskByIdempotencyKey: submits.taskByIdempotencyKey,
        listDeadLetters: (limit, tenant) => store.listDeadLetters(limit, tenant),
        redrive: (taskId, tenant) => store.redrive(taskId, tenant),
        getTask: (taskId, tenant) => store.getTask(taskId, tenant),
        agentCostSince: (agent, since) => store.agentCostSince(agent, since),
      };
      const events = { sink: taskEventSink(broker, this.logger), node: broker.nodeID };
      switches = {
        board: processSwitchBoard(resources, () => new SwitchBoard({ load: () => store.listSwitches(), logger: this.logger })),
        control: new SwitchControl({
          store,
          agents: resources.agents,
          wakeUps,
          cancel: (taskId, by, reason) => broker.call("intake.cancelTask", { taskId, by, reason }),
          // Lost, it is only late: every board reads the switches within SWITCH_REFRESH_MS anyway.
          announce: (event: SwitchChangedEvent) =>
            void Promise.resolve(broker.broadcast(SWITCH_CHANGED_EVENT, event)).catch((err: unknown) =>
              this.logger.warn({ event: "switch.announce_failed", err: String(err) }, "switch change not broadcast; the boards read it at their next refresh"),
            ),
          logger: this.logger,
          node: broker.nodeID,
        }),
      };
      // The submit buckets are shared through Redis by every intake of a cluster; embedded, they are in memory.
      const submitQuota = submitQuotaFor(config.tenants, config.mode === "distributed" ? () => resources.redis() : undefined, config.namespace);
      webhooks = webhookParts(config.webhooks);
      const canceller = new Canceller({
        store,
        // Straight to the node running the task, no retry: past the timeout the fence and the broadcast cover it.
        abortOn: (nodeID, taskId, reason, timeout) => broker.call("planner.abortTask", { taskId, ...(reason !== undefined ? { reason } : {}) }, { nodeID, timeout, retries: 0 }),
        broadcast: (event) => void Promise.resolve(broker.broadcast(TASK_CANCELLED_CONTROL_EVENT, event)).catch(() => undefined),
        events,
        logger: this.logger,
      });
      rollouts = new Rollouts({ store, agents: resources.agents, logger: this.logger, events: { sink: canaryEventSink(broker, this.logger), node: broker.nodeID } });
      approvals = new ApprovalControl({ store, wakeUps, logger: this.logger, events: { emitter: broker, sink: events.sink, node: broker.nodeID } });
      parts = {
        // Submits that arrive together are committed together (src/queue/createBatcher.ts).
        intake: new Intake({ store: intakeStore, createTask: new CreateBatcher(submits), agents: resources.agents, wakeUps, events, ...(submitQuota ? { submitQuota } : {}), webhooks: webhooks.admission, rollouts }),
        wakeUps,
        canceller,
      };
    },
    async started() {
      const broker = this.broker;
      // Opened (and migrated, as every role with the database does) before the first submit is taken.
      db = (await resources.database()).store;
      reaper = new ReaperLoop(
        {
          store: (timeout) => new RemoteTaskStore((action, params) => broker.call(action, params, { timeout })),
          leases: resources.leases(),
          wakeUps: created().wakeUps,
          queueDepth: () => resources.backends.queueDepth(),
          logger: this.logger,
          approvals: (timeout) =>
            new ApprovalControl({
              store: new RemoteTaskStore((action, params) => broker.call(action, params, { timeout })),
              wakeUps: created().wakeUps,
              logger: this.logger,
              events: { emitter: broker, sink: taskEventSink(broker, this.logger), node: broker.nodeID },
            }),
        },
        { owner: `${broker.nodeID}:reaper`, intervalMs: config.reaper.intervalMs, queuedAfterMs: config.reaper.queuedAfterMs },
      );
      reaper.start();
      // Stores the agent files' versions (a new one is a deploy) and keeps the routing fresh.
      rollouts?.start();
      const board = switchParts().board;
      board.start();
      metrics?.attachSwitchSource(() => board.list());
      // The canary judge: one intake of the cluster (its own lease) decides, on the rollout row's revision.
      judge = new CanaryJudgeLoop(
        {
          store: (timeout) => new RemoteTaskStore((action, params) => broker.call(action, params, { timeout })),
          leases: resources.leases(),
          broadcast: (name, payload) =>
            void Promise.resolve(broker.broadcast(name, payload)).catch((err: unknown) =>
              this.logger.warn({ event: "canary.event_failed", name, err: messageOf(err) }, "canary event not sent"),
            ),
          ...(metrics ? { metrics } : {}),
          logger: this.logger,
        },
        { owner: `${broker.nodeID}:judge`, node: broker.nodeID, intervalMs: config.canaryJudge.intervalMs },
      );
      judge.start();
      // Every intake delivers webhooks: claims skip the rows another intake holds, so no leader is needed.
      dispatcher = webhooks?.dispatcher(
        new RemoteTaskStore((action, params) => broker.call(action, params, { timeout: 10_000 })),
        `${broker.nodeID}:webhooks`,
        this.logger,
      );
      dispatcher?.start();
      if (config.webhooks.allowPrivate) {
        this.logger.warn(
          { event: "webhooks.allow_private" },
          "CLAWFLEET_WEBHOOK_ALLOW_PRIVATE=1: webhooks may be sent to private, loopback and link-local addresses. Use it for tests and on-prem receivers only.",
        );
      }
      resources.health.register("intake");
    },
    async stopped() {
      resources.health.unregister("intake");
      reaper?.stop();
      switches?.board.stop();
      judge?.stop();
      rollouts?.stop();
      await dispatcher?.stop();
      // Answered submits' wake-ups still on their way go out before the channels close (a lost one is the reaper's).
      await parts?.intake.wakeUpsSent(WAKEUPS_SENT_WAIT_MS);
    },
  };
}
