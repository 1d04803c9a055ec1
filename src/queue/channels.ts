/**
 * The @moleculer/channels middleware as Clawfleet configures it: Redis Streams in
 * distributed mode, the in-process `MemoryAdapter` in embedded mode, with the
 * same retry and dead-letter policy in both (wakeups.ts). Also the typed edges of
 * the library (its typings are loose): `sendToChannel` and queue statistics for metrics.
 *
 * Queue messages are only wake-ups ("look at task X"); Postgres is the truth and
 * the reaper re-publishes a wake-up for any task left `queued` or holding a lapsed
 * lease within seconds. The queue's own redelivery is therefore a backstop.
 */
import { Middleware as ChannelsMiddleware } from "@moleculer/channels";
import type { Redis } from "ioredis";
import type { Middleware, ServiceBroker } from "moleculer";
import { type MemoryAdapter, memoryAdapter, type QueueDepth } from "./memoryAdapter";
import { RedisStreamsAdapter } from "./redisStreamsAdapter";
import { readStreamGroup } from "./streamGroup";
import { TASKS_DEAD_MAXLEN, WAKEUP_DEAD_LETTERING, WAKEUP_MAX_RETRIES, type ChannelSend } from "./wakeups";

export type { QueueDepth } from "./memoryAdapter";


/**
 * How long a delivered, unacknowledged message sits before another consumer may
 * claim it. A planner acknowledges a wake-up only when the task's run ends, so a
 * claim sooner than the longest run would hand a live task's wake-up to a second
 * planner, and every claim counts as a delivery toward `maxRetries`: a long task
 * could be dead-lettered while it is still running fine. Claims only matter when
 * a consumer died holding messages, and the reaper already re-publishes those
 * tasks within seconds, so waiting long costs nothing.
 */
export const DEFAULT_MIN_IDLE_TIME_MS = 10 * 60_000;
/** How often each consumer looks for claimable messages; small next to the idle time, cheap for Redis. */
export const DEFAULT_CLAIM_INTERVAL_MS = 5_000;
/** Deliveries of a failing wake-up before it is dead-lettered (see wakeups.ts). */
export const DEFAULT_MAX_RETRIES = WAKEUP_MAX_RETRIES;

interface CommonOptions {
  /** @default DEFAULT_MAX_RETRIES */
  maxRetries?: number;
}

export interface EmbeddedChannelsOptions extends CommonOptions {
  mode: "embedded";
  /** A ready adapter (tests keep a handle on it for `depth()`); otherwise one is made with the common policy. */
  adapter?: MemoryAdapter;
  /** Pause before a failed wake-up is delivered again. @default 1000 */
  retryDelayMs?: number;
}

export interface DistributedChannelsOptions extends CommonOptions {
  mode: "distributed";
  redisUrl: string;
  /** Prefix of the stream keys: `${namespace}.${channel}`. */
  namespace: string;
  /** @default DEFAULT_MIN_IDLE_TIME_MS */
  minIdleTimeMs?: number;
  /** @default DEFAULT_CLAIM_INTERVAL_MS */
  claimIntervalMs?: number;
  /** Entries the dead-letter stream keeps. @default TASKS_DEAD_MAXLEN */
  deadLetterMaxLen?: number;
}

export type ChannelsOptions = EmbeddedChannelsOptions | DistributedChannelsOptions;

function checkInteger(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < min)) {
    throw new RangeError(`channels: ${name} must be an integer >= ${min}, got ${value}`);
  }
}

/** The Channels middleware for this process's mode; `broker.sendToChannel` comes with it. */
export function channelsMiddleware(opts: ChannelsOptions): Middleware {
  const maxRetries = opts.maxRetries ?? DEFAULT_MAX_RETRIES;
  checkInteger("maxRetries", maxRetries, 0);
  const deadLettering = { ...WAKEUP_DEAD_LETTERING };

  let adapter: unknown;
  if (opts.mode === "embedded") {
    adapter = opts.adapter ?? embeddedAdapter({ maxRetries, ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}) });
  } else {
    checkInteger("minIdleTimeMs", opts.minIdleTimeMs, 1);
    checkInteger("claimIntervalMs", opts.claimIntervalMs, 1);
    checkInteger("deadLetterMaxLen", opts.deadLetterMaxLen, 1);
    // The library's Redis adapter, hardened for a Redis that restarts empty (see redisStreamsAdapter.ts).
    adapter = new RedisStreamsAdapter({
      prefix: opts.namespace,
      serializer: "JSON",
      maxRetries,
      deadLettering,
      deadLetterMaxLen: opts.deadLetterMaxLen ?? TASKS_DEAD_MAXLEN,
      redis: {
        url: opts.redisUrl,
        consumerOptions: {
          // A group created after messages were published reads them all: the wake-ups
          // of tasks submitted before the first planner started are not skipped.
          startID: "0",
          minIdleTime: opts.minIdleTimeMs ?? DEFAULT_MIN_IDLE_TIME_MS,
          claimInterval: opts.claimIntervalMs ?? DEFAULT_CLAIM_INTERVAL_MS,
          readTimeoutInterval: 0,
        },
      },
    });
  }
  // The library types `adapter` as a name or config and its return value as a
  // plain object; both are wider in fact, and both are checked here instead.
  const create = ChannelsMiddleware as unknown as (o: { adapter: unknown }) => Middleware;
  return create({ adapter });
}

/** The in-process adapter with the wake-up policy (a caller that keeps a handle on it for `depth()` makes it here). */
export function embeddedAdapter(opts: { maxRetries?: number; retryDelayMs?: number } = {}): MemoryAdapter {
  return memoryAdapter({
    maxRetries: WAKEUP_MAX_RETRIES,
    ...opts,
    deadLettering: { ...WAKEUP_DEAD_LETTERING },
    deadLetterMaxLen: TASKS_DEAD_MAXLEN,
    serializer: "JSON",
  });
}

export interface SendOptions {
  headers?: Record<string, string>;
  /**
   * Caps a Redis stream's length (`"~N"`: approximate, cheap). Acknowledged wake-ups are never
   * read again, so the cap only bounds memory; if a backlog ever exceeded it, the trimmed
   * wake-ups' tasks are still `queued` in Postgres and the reaper re-publishes them.
   * The in-process adapter ignores it.
   */
  xaddMaxLen?: string;
}

type SendToChannel = (channel: string, payload: unknown, opts?: SendOptions) => Promise<void>;

/** `broker.sendToChannel`, typed. Rejects while the adapter is not connected (inside a service's `started()`). */
export function sendToChannel(broker: ServiceBroker, channel: string, payload: unknown, opts?: SendOptions): Promise<void> {
  const send = (broker as unknown as { sendToChannel?: SendToChannel }).sendToChannel;
  if (typeof send !== "function") throw new Error("the Channels middleware is not installed on this broker");
  return send.call(broker, channel, payload, opts);
}

/** A broker's `sendToChannel` as the wake-up publisher takes it. */
export function channelSender(broker: ServiceBroker): ChannelSend {
  return (channel, payload, opts) => sendToChannel(broker, channel, payload, opts);
}

/** Cap on the entries read to count a backlog when Redis cannot report the group's lag. */
const LAG_FALLBACK_LIMIT = 10_000;

/**
 * Backlog of one consumer group of a Redis Streams channel, for the metrics
 * service and the autoscaler. `waiting` is the group's `lag` (entries not yet
 * delivered to any consumer), `inFlight` its `pending` (delivered, not yet
 * acknowledged: being handled, or failed and waiting to be claimed).
 *
 * Redis 7 reports `lag`; where it cannot (older Redis, or deleted entries in the
 * unread range) the entries after the group's last delivered id are counted, up
 * to LAG_FALLBACK_LIMIT. A group not created yet will read the whole stream
 * (`startID: "0"`), so its backlog is the stream's length.
 */
export async function queueStats(redis: Redis, namespace: string, channel: string, group: string): Promise<QueueDepth> {
  return readStreamGroup(redis, namespace, channel, group, "queue statistics", { waiting: 0, inFlight: 0 }, async (key, info) => {
    if (!info) return { waiting: await redis.xlen(key), inFlight: 0 };
    const pending = Number(info.get("pending") ?? 0);
    const lag = info.get("lag");
    if (typeof lag === "number") return { waiting: lag, inFlight: pending };
    const last = info.get("last-delivered-id");
    const lastId = typeof last === "string" ? last : "0-0";
    const unread = await redis.xrange(key, `(${lastId}`, "+", "COUNT", LAG_FALLBACK_LIMIT);
    return { waiting: unread.length, inFlight: pending };
  });
}
