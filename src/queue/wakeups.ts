/**
 * Wake-ups, the messages of channel `tasks.ready` ("look at task X"), and the one
 * place their policy is spelled: the channel names, how the planners consume them
 * (group, deliveries, dead-letter queue), the stream's length cap, and the
 * publisher that intake, the reaper and the planner share.
 *
 * A wake-up is only a hint; Postgres is the truth. So a publish that fails is
 * logged and left to the reaper, never thrown at a caller whose task is
 * already committed.
 */
import type { Config } from "../config";
import { PLANNERS_GROUP, TASKS_READY_CHANNEL, type WakeUp } from "../contracts";
import { messageOf } from "../errors";
import type { Logger } from "../logging";

// Declared with the wake-up's shape in src/contracts; here with the rest of the policy.
export { PLANNERS_GROUP, TASKS_READY_CHANNEL };

/** Where wake-ups that failed every delivery go (prefixed with the namespace, like every channel). */
export const TASKS_DEAD_CHANNEL = "tasks.dead";

/**
 * Deliveries of a failing wake-up before it is dead-lettered. As in every
 * @moleculer/channels adapter this counts deliveries, first one included.
 */
export const WAKEUP_MAX_RETRIES = 3;

/** Dead-lettering as every adapter and every consumer of `tasks.ready` configures it. */
export const WAKEUP_DEAD_LETTERING = { enabled: true, queueName: TASKS_DEAD_CHANNEL } as const;

/**
 * Length cap of the tasks.ready stream: ~100,000 entries, about 10 MB of Redis. Acknowledged
 * wake-ups are never read again, so the cap only bounds memory; if a backlog ever exceeded it,
 * the trimmed wake-ups' tasks are still `queued` in Postgres and the reaper re-publishes them.
 */
export const TASKS_READY_MAXLEN = "~100000";

/**
 * Length cap of the dead-letter stream (and of the embedded dead-letter topic): the most
 * recent ~10,000 wake-ups that failed every delivery. They are forensics, not work: the task
 * each one named is still in Postgres (queued, so the reaper re-publishes it, or settled).
 * Without a cap a handler failing in a loop would grow Redis without bound.
 */
export const TASKS_DEAD_MAXLEN = 10_000;

export interface ConsumerPolicy {
  group: string;
  maxInFlight: number;
  maxRetries: number;
  deadLettering: { enabled: boolean; queueName: string };
}

/**
 * The planners' consumer policy for `tasks.ready`, spread into the planner's channel
 * definition: one consumer group, one wake-up per slot in flight. The handler does
 * not throw for a task's own failure (that is recorded on the task); a throw means
 * infrastructure trouble, and the reaper re-publishes the task anyway.
 */
export function plannerConsumer(config: { planner: Pick<Config["planner"], "slots"> }): ConsumerPolicy {
  return {
    group: PLANNERS_GROUP,
    maxInFlight: config.planner.slots,
    maxRetries: WAKEUP_MAX_RETRIES,
    deadLettering: { ...WAKEUP_DEAD_LETTERING },
  };
}

/** `broker.sendToChannel`, as `channelSender` in channels.ts types it. */
export type ChannelSend = (channel: string, payload: unknown, opts: { xaddMaxLen: string }) => Promise<void>;

export interface WakeUpsOptions {
  /** Share of post-commit publishes dropped on purpose (`config.faults.dropWakeups`). @default 0 */
  dropRate?: number;
  /** @default Math.random */
  random?: () => number;
}

/** Publishes wake-ups on `tasks.ready`. */
export class WakeUps {
  private readonly dropRate: number;
  private readonly random: () => number;

  constructor(
    private readonly send: ChannelSend,
    private readonly logger: Pick<Logger, "warn">,
    opts: WakeUpsOptions = {},
  ) {
    this.dropRate = opts.dropRate ?? 0;
    this.random = opts.random ?? Math.random;
  }

  /** Publishes a wake-up; a failure is logged, not thrown: the task is committed and the reaper re-publishes it. */
  async publish(wakeUp: WakeUp): Promise<void> {
    try {
      await this.send(TASKS_READY_CHANNEL, wakeUp, { xaddMaxLen: TASKS_READY_MAXLEN });
    } catch (err) {
      this.logger.warn({ taskId: wakeUp.taskId, event: "wakeup.publish_failed", reason: wakeUp.reason, err: messageOf(err) }, "wake-up not published; the reaper will");
    }
  }

  /**
   * The publish that follows a commit (a submission, a redrive). CLAWFLEET_FAULT_DROP_WAKEUPS
   * skips it, as a crash between the commit and the publish would: the drill that proves the
   * reaper finds such a task.
   */
  async publishCommitted(wakeUp: WakeUp): Promise<void> {
    if (this.dropRate > 0 && this.random() < this.dropRate) {
      this.logger.warn({ taskId: wakeUp.taskId, event: "wakeup.dropped_by_fault", reason: wakeUp.reason }, "wake-up dropped by fault injection; the reaper must find the task");
      return;
    }
    await this.publish(wakeUp);
  }
}
