/**
 * leases (redis) - renewMany: a planner's heartbeat renews thousands of leases in one script call per
 * thousand, the same compare-and-extend `renew` runs for each in turn, so each lease answers exactly as
 * `renew` would for it, and a heartbeat is a few Redis commands however many tasks are in flight.
 */
import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/errors";
import { RENEW_BATCH, RedisLeaseManager } from "../../src/lease/redis";
import { createRedis } from "../../src/redis/connection";
import { REDIS_TEST_URL, hasService, uniqueId } from "../helpers/services";

describe.skipIf(!hasService("redis"))("leases (redis) - renewMany", () => {
  const prefix = uniqueId("clawfleet-test-");
  const connections: Redis[] = [];
  const connect = () => {
    const c = createRedis(REDIS_TEST_URL, { name: "lease-renew-test" });
    connections.push(c);
    return c;
  };

  afterAll(async () => {
    const admin = connections[0];
    if (admin) {
      const keys = await admin.keys(`${prefix}:*`);
      if (keys.length > 0) await admin.del(...keys);
    }
    await Promise.all(connections.map((c) => c.quit()));
  });

  it("renews 2,000 leases at once, each one extended only for its own owner", async () => {
    const redis = connect();
    const m = new RedisLeaseManager(redis, { prefix });
    const held = Array.from({ length: 2_000 }, (_, i) => ({ taskId: `t${i}`, owner: `planner-a:${i}` }));
    // Long TTLs: acquiring 2,000 leases on a loaded machine may take seconds.
    expect(await Promise.all(held.map((l) => m.acquire(l.taskId, l.owner, 60_000)))).toEqual(held.map(() => true));
    // Four of them are no longer ours: taken over by another owner (one of them the first of the second
    // thousand), released, or never ours at all.
    await redis.set(m.key("t7"), "planner-b:x", "PX", 60_000);
    await redis.set(m.key("t1000"), "planner-b:y", "PX", 60_000);
    await redis.del(m.key("t8"));
    const asked = [...held, { taskId: "never", owner: "planner-a:never" }];

    const answers = await m.renewMany(asked, 600_000);

    expect(answers).toHaveLength(asked.length);
    expect(answers.filter((a) => !a)).toHaveLength(4);
    expect([answers[7], answers[8], answers[1_000], answers[2_000]]).toEqual([false, false, false, false]);
    expect([answers[999], answers[1_001]]).toEqual([true, true]);
    expect(await redis.pttl(m.key("t0"))).toBeGreaterThan(500_000);
    expect(await redis.pttl(m.key("t1999"))).toBeGreaterThan(500_000);
    // The other owner's lease keeps its own TTL and value; nothing was created for the lease never held.
    expect(await redis.get(m.key("t7"))).toBe("planner-b:x");
    expect(await redis.pttl(m.key("t7"))).toBeLessThanOrEqual(60_000);
    expect(await redis.exists(m.key("t8"), m.key("never"))).toBe(0);
    expect(await m.renewMany([], 1_000)).toEqual([]);
  });

  it("sends one command per thousand leases, not one per lease", async () => {
    const redis = connect();
    const m = new RedisLeaseManager(redis, { prefix: `${prefix}:count` });
    const held = Array.from({ length: 2 * RENEW_BATCH + 1 }, (_, i) => ({ taskId: `c${i}`, owner: "planner-c" }));
    await redis.mset(...held.flatMap((l) => [m.key(l.taskId), l.owner]));
    // The first call of a script on a connection may go as EVAL (or meet an empty script cache): counted from the second on.
    await m.renewMany(held.slice(0, 1), 60_000);
    const sent: string[] = [];
    const send = redis.sendCommand.bind(redis);
    redis.sendCommand = (command, stream) => {
      sent.push(command.name);
      return send(command, stream);
    };

    const answers = await m.renewMany(held, 60_000);

    expect(answers.every((a) => a)).toBe(true);
    expect(sent).toEqual(["evalsha", "evalsha", "evalsha"]);
    expect(await redis.pttl(m.key(`c${2 * RENEW_BATCH}`))).toBeGreaterThan(50_000);
  });

  it("throws UnavailableError (not a list of false) when Redis cannot be reached", async () => {
    const down = createRedis("redis://127.0.0.1:1", { name: "lease-renew-down", logger: { info: () => {}, warn: () => {} }, maxRetriesPerRequest: 1, maxReconnectDelayMs: 100 });
    try {
      const m = new RedisLeaseManager(down, { prefix });
      await expect(m.renewMany([{ taskId: "t", owner: "a" }], 1_000)).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      down.disconnect();
    }
  });
});
