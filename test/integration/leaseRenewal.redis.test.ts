/**
 * leases (redis) - renewMany: a planner's heartbeat renews thousands of leases in one pipeline of the
 * same compare-and-extend `renew` runs, so each lease answers exactly as `renew` would for it.
 */
import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/errors";
import { RedisLeaseManager } from "../../src/lease/redis";
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
    // Three of them are no longer ours: taken over by another owner, released, or never ours at all.
    await redis.set(m.key("t7"), "planner-b:x", "PX", 60_000);
    await redis.del(m.key("t8"));
    const asked = [...held, { taskId: "never", owner: "planner-a:never" }];

    const answers = await m.renewMany(asked, 600_000);

    expect(answers.filter((a) => !a)).toHaveLength(3);
    expect([answers[7], answers[8], answers[2_000]]).toEqual([false, false, false]);
    expect(await redis.pttl(m.key("t0"))).toBeGreaterThan(500_000);
    expect(await redis.pttl(m.key("t1999"))).toBeGreaterThan(500_000);
    // The other owner's lease keeps its own TTL and value; nothing was created for the lease never held.
    expect(await redis.get(m.key("t7"))).toBe("planner-b:x");
    expect(await redis.pttl(m.key("t7"))).toBeLessThanOrEqual(60_000);
    expect(await redis.exists(m.key("t8"), m.key("never"))).toBe(0);
    expect(await m.renewMany([], 1_000)).toEqual([]);
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
