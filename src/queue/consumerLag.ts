/**
 * Consumer lag of a Redis Streams channel in seconds: the age of the oldest entry
 * the consumer group has not been handed yet (0 when it has them all). Stream
 * entry ids start with the millisecond they were added, so the age needs no
 * extra bookkeeping. Complements `queueStats` (how many wait) with how long.
 */
import type { Redis } from "ioredis";
import { readStreamGroup } from "./streamGroup";

export async function consumerLagSeconds(redis: Redis, namespace: string, channel: string, group: string, now: number = Date.now()): Promise<number> {
  return readStreamGroup(redis, namespace, channel, group, "queue lag", 0, async (key, info) => {
    const last = info?.get("last-delivered-id");
    // A group not created yet will read the stream from its start.
    const start = typeof last === "string" ? `(${last}` : "-";
    const next = await redis.xrange(key, start, "+", "COUNT", 1);
    const id = next[0]?.[0];
    if (id === undefined) return 0;
    const ms = Number(id.split("-")[0]);
    return Number.isFinite(ms) ? Math.max(0, (now - ms) / 1000) : 0;
  });
}
