/**
 * The one way Clawfleet opens a Redis connection (leases, token buckets, queue
 * statistics). The options trade "wait for Redis to come back" against "tell the
 * caller quickly": lease heartbeats and rate-limit reservations must learn within
 * a fraction of a lease TTL that Redis is gone, so they can decide what to do,
 * while a Redis restart must never take the process down.
 */
import { Redis, ReplyError, type RedisOptions } from "ioredis";
import { UnavailableError, messageOf } from "../errors";
import { redactUrl } from "../logging";

/** What the connection reports to; Moleculer's and pino's loggers both fit. */
export interface RedisLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface RedisConnectionOptions {
  /** Shown in `CLIENT LIST` and in log lines, e.g. `leases`. @default "clawfleet" */
  name?: string;
  logger?: RedisLogger;
  /**
   * A command not answered within this time fails. Bounds a lease renewal or a
   * rate-limit reservation even when packets are dropped silently. Must be 0
   * (disabled) for a connection that issues blocking commands (BLPOP, XREAD BLOCK).
   * @default 2000
   */
  commandTimeoutMs?: number;
  /** Reconnection attempts a queued command survives before it fails. @default 2 */
  maxRetriesPerRequest?: number;
  /** Upper bound of the reconnect back-off. @default 2000 */
  maxReconnectDelayMs?: number;
  /** @default 5000 */
  connectTimeoutMs?: number;
}

/** One line per message on stderr: the default, and what to report to before a real logger is at hand. */
export const stderrRedisLogger: RedisLogger = {
  info: (msg) => process.stderr.write(`${msg}\n`),
  warn: (msg) => process.stderr.write(`${msg}\n`),
};

/** The URL with its password (and user name) replaced, for log lines and error messages. */
export function redactRedisUrl(url: string): string {
  // "default" is Redis' built-in user: naming it tells nothing.
  return redactUrl(url, { keepUsers: ["default"], fallback: "<unparsable redis url>" });
}

/** Exponential back-off with full jitter, so a fleet of pods does not reconnect in lock-step. */
export function reconnectDelay(attempt: number, maxDelayMs: number): number {
  const ceiling = Math.min(maxDelayMs, 50 * 2 ** Math.min(attempt, 16));
  return Math.max(50, Math.round(Math.random() * ceiling));
}

/**
 * Opens a connection at once (`lazyConnect: false`): a wrong URL shows up at
 * start-up in the log rather than at the first lease.
 *
 * - The offline queue stays enabled on purpose: a command issued during a short
 *   reconnect (Redis restart, failover) waits for it instead of failing instantly,
 *   and `maxRetriesPerRequest` plus `commandTimeoutMs` bound that wait, so callers
 *   still get an error within seconds when Redis is really gone.
 * - The retry strategy never gives up: the process keeps serving what it can and
 *   reconnects whenever Redis is back.
 * - `READONLY` replies (a replica promoted away under us) force a reconnect.
 */
export function createRedis(url: string, opts: RedisConnectionOptions = {}): Redis {
  const name = opts.name ?? "clawfleet";
  const logger = opts.logger ?? stderrRedisLogger;
  const maxDelay = opts.maxReconnectDelayMs ?? 2000;
  const options: RedisOptions = {
    connectionName: name,
    lazyConnect: false,
    enableOfflineQueue: true,
    enableReadyCheck: true,
    maxRetriesPerRequest: opts.maxRetriesPerRequest ?? 2,
    connectTimeout: opts.connectTimeoutMs ?? 5000,
    retryStrategy: (attempt) => reconnectDelay(attempt, maxDelay),
    reconnectOnError: (err) => (err.message.startsWith("READONLY") ? 2 : false),
  };
  const commandTimeout = opts.commandTimeoutMs ?? 2000;
  if (commandTimeout > 0) options.commandTimeout = commandTimeout;

  const redis = new Redis(url, options);
  const where = redactRedisUrl(url);

  // ioredis reports every failed reconnect attempt; without a listener it prints a
  // stack trace to the console each time. One line per outage says enough.
  let reportedOutage = false;
  redis.on("error", (err: unknown) => {
    if (reportedOutage) return;
    reportedOutage = true;
    logger.warn(`redis ${name} (${where}): ${messageOf(err)}; reconnecting`);
  });
  redis.on("ready", () => {
    if (!reportedOutage) return;
    reportedOutage = false;
    logger.info(`redis ${name} (${where}): connection restored`);
  });
  return redis;
}

/**
 * Server replies that mean "Redis cannot serve right now" rather than "this
 * command is wrong": loading its dataset, busy with a script, a read-only replica,
 * a cluster or replication hiccup, out of memory.
 */
const TRANSIENT_REPLY = /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|OOM|NOREPLICAS)\b/;

/**
 * Whether a failed command means Redis could not be reached or could not serve
 * (worth an `UnavailableError` and a retry), as opposed to an error reply to a
 * wrong command (a bug, to surface as is).
 */
export function isRedisUnavailable(err: unknown): boolean {
  if (err instanceof ReplyError) return TRANSIENT_REPLY.test(messageOf(err));
  return true;
}

/**
 * Awaits one Redis round trip of `subject` (`lease`, `rate-limit`): failing to
 * reach Redis becomes `UnavailableError`, while an error reply (a bug) passes
 * through. Takes the promise rather than a thunk so that a synchronous throw (a
 * misnamed script) is never mistaken for an outage.
 */
export async function awaitRedis<T>(subject: string, operation: string, pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (err) {
    if (!isRedisUnavailable(err)) throw err;
    throw new UnavailableError(`Redis unavailable for ${subject} ${operation}: ${messageOf(err)}`, { dependency: "redis", operation });
  }
}
