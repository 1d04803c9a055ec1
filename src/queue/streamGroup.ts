/**
 * Reading one consumer group of a channel's Redis stream, as queue statistics and
 * consumer lag both do: the same key naming, the same "stream not created yet"
 * case and the same mapping of a Redis outage to `UnavailableError`.
 */
import { ReplyError, type Redis } from "ioredis";
import { UnavailableError, messageOf } from "../errors";
import { isRedisUnavailable } from "../redis/connection";

/**
 * Calls `read` with the stream's key and the XINFO GROUPS entry of `group`
 * (undefined while the group is not created yet); answers `noStream` when the
 * stream does not exist. Any Redis outage, in XINFO or in `read`, becomes an
 * `UnavailableError` "Redis unavailable for <what>".
 */
export async function readStreamGroup<T>(
  redis: Redis,
  namespace: string,
  channel: string,
  group: string,
  what: string,
  noStream: T,
  read: (key: string, info: Map<string, unknown> | undefined) => Promise<T>,
): Promise<T> {
  const key = namespace !== "" ? `${namespace}.${channel}` : channel;
  try {
    let groups: unknown;
    try {
      groups = await redis.xinfo("GROUPS", key);
    } catch (err) {
      if (err instanceof ReplyError && /no such key/i.test(messageOf(err))) return noStream;
      throw err;
    }
    const info = Array.isArray(groups) ? groups.map(fields).find((g) => g.get("name") === group) : undefined;
    return await read(key, info);
  } catch (err) {
    if (!isRedisUnavailable(err)) throw err;
    throw new UnavailableError(`Redis unavailable for ${what}: ${messageOf(err)}`, { dependency: "redis", channel });
  }
}

/** A flat RESP2 map reply (`[field, value, field, value, …]`) as a Map. */
function fields(reply: unknown): Map<string, unknown> {
  const map = new Map<string, unknown>();
  if (!Array.isArray(reply)) return map;
  for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), reply[i + 1]);
  return map;
}
