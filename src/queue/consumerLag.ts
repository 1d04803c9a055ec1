/**
 * Consumer lag of a Redis Streams channel in seconds: the age of the oldest entry
 * the consumer group has not been handed yet (0 when it has them all). Stream
 * entry ids start with the millisecond they were added, so the age needs no
 * extra bookkeeping. Complements `queueStats` (how many wait) with how long.
 */
import { ReplyError, type Redis } from "ioredis";
import { UnavailableError, messageOf } from "../errors";
import { isRedisUnavailable } from "../redis/connection";

export async function consumerLagSeconds(redis: Redis, namespace: string, channel: string, group: string, now: number = Date.now()): Promise<number> {
  const key = namespace !== "" ? `${namespace}.${channel}` : channel;
  try {
    let groups: unknown;
    try {
      groups = await redis.xinfo("GROUPS", key);
    } catch (err) {
      if (err instanceof ReplyError && /no such key/i.test(messageOf(err))) return 0;
      throw err;
    }
    const last = Array.isArray(groups) ? groups.map(pairs).find((g) => g.get("name") === group)?.get("last-delivered-id") : undefined;
    // A group not created yet will read the stream from its start.
    const start = typeof last === "string" ? `(${last}` : "-";
    const next = await redis.xrange(key, start, "+", "COUNT", 1);
    const id = next[0]?.[0];
    if (id === undefined) return 0;
    const ms = Number(id.split("-")[0]);
    return Number.isFinite(ms) ? Math.max(0, (now - ms) / 1000) : 0;
  } catch (err) {
    if (!isRedisUnavailable(err)) throw err;
    throw new UnavailableError(`Redis unavailable for queue lag: ${messageOf(err)}`, { dependency: "redis", channel });
  }
}

/** A flat RESP2 map reply (`[field, value, …]`) as a Map. */
function pairs(reply: unknown): Map<string, unknown> {
  const map = new Map<string, unknown>();
  if (!Array.isArray(reply)) return map;
  for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), reply[i + 1]);
  return map;
}
