/**
 * One contract, two lease managers: the in-process one (embedded mode) and the
 * Redis one (distributed mode) must be indistinguishable to a planner.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/errors";
import { MemoryLeaseManager } from "../../src/lease/memory";
import { RedisLeaseManager } from "../../src/lease/redis";
import type { LeaseManager } from "../../src/lease/types";
import { createRedis } from "../../src/redis/connection";
import { REDIS_TEST_URL, hasService, uniqueId } from "../helpers/services";

const TTL = 150;

interface Subject {
  /** A manager, as one planner process holds it. */
  manager: LeaseManager;
  /** `n` managers that compete for the same leases, spread over separate connections where there are any. */
  contenders(n: number): LeaseManager[];
}

function leaseContract(name: string, open: () => Promise<Subject>, close: () => Promise<void>): void {
  describe(`leases (${name})`, () => {
    let s: Subject;
    let task: string;
    beforeAll(async () => {
      s = await open();
    });
    afterAll(close);
    const newTask = () => (task = uniqueId("task-"));

    it("acquire - a second owner is refused while the lease is live", async () => {
      newTask();
      expect(await s.manager.acquire(task, "a", 5000)).toBe(true);
      expect(await s.manager.acquire(task, "b", 5000)).toBe(false);
    });

    it("acquire - the holder itself is refused too: SET NX knows no owners, holders extend with renew", async () => {
      newTask();
      expect(await s.manager.acquire(task, "a", 5000)).toBe(true);
      expect(await s.manager.acquire(task, "a", 5000)).toBe(false);
      expect(await s.manager.renew(task, "a", 5000)).toBe(true);
    });

    it("renew - by the owner keeps the lease past its original TTL", async () => {
      newTask();
      expect(await s.manager.acquire(task, "a", TTL)).toBe(true);
      await sleep(TTL * 0.6);
      expect(await s.manager.renew(task, "a", TTL * 2)).toBe(true);
      await sleep(TTL * 0.9); // now past the first TTL, inside the renewed one
      expect(await s.manager.held([task])).toEqual([true]);
      expect(await s.manager.acquire(task, "b", TTL)).toBe(false);
    });

    it("renew - by a stranger fails and leaves the owner's lease alone", async () => {
      newTask();
      expect(await s.manager.acquire(task, "a", 5000)).toBe(true);
      expect(await s.manager.renew(task, "b", 5000)).toBe(false);
      expect(await s.manager.release(task, "a")).toBe(true);
    });

    it("renew - of a lease never acquired reports it lost", async () => {
      newTask();
      expect(await s.manager.renew(task, "a", 5000)).toBe(false);
      expect(await s.manager.held([task])).toEqual([false]);
    });

    it("expiry - an unrenewed lease is free after its TTL, and its old owner can no longer renew it", async () => {
      newTask();
      expect(await s.manager.acquire(task, "a", TTL)).toBe(true);
      await sleep(TTL + 60);
      expect(await s.manager.held([task])).toEqual([false]);
      expect(await s.manager.renew(task, "a", TTL)).toBe(false);
      expect(await s.manager.acquire(task, "b", 5000)).toBe(true);
      expect(await s.manager.release(task, "a")).toBe(false);
      expect(await s.manager.held([task])).toEqual([true]);
    });

    it("release - only the owner can release (compare-and-delete), and only once", async () => {
      newTask();
      expect(await s.manager.acquire(task, "a", 5000)).toBe(true);
      expect(await s.manager.release(task, "b")).toBe(false);
      expect(await s.manager.held([task])).toEqual([true]);
      expect(await s.manager.release(task, "a")).toBe(true);
      expect(await s.manager.held([task])).toEqual([false]);
      expect(await s.manager.release(task, "a")).toBe(false);
      expect(await s.manager.acquire(task, "b", 5000)).toBe(true);
    });

    it("held - reports each task's live lease in order, whoever holds it", async () => {
      const [t1, t2, t3, t4] = [uniqueId("task-"), uniqueId("task-"), uniqueId("task-"), uniqueId("task-")];
      expect(await s.manager.acquire(t1, "a", 5000)).toBe(true);
      expect(await s.manager.acquire(t3, "b", 5000)).toBe(true);
      expect(await s.manager.acquire(t4, "c", TTL)).toBe(true);
      await sleep(TTL + 60);
      expect(await s.manager.held([t1, t2, t3, t4, t1])).toEqual([true, false, true, false, true]);
      expect(await s.manager.held([])).toEqual([]);
    });

    it("acquire - of 20 concurrent contenders exactly one wins, every time", async () => {
      const contenders = s.contenders(20);
      for (let round = 0; round < 10; round++) {
        newTask();
        const results = await Promise.all(contenders.map((m, i) => m.acquire(task, `owner-${i}`, 5000)));
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = results.indexOf(true);
        expect(await s.manager.renew(task, `owner-${winner}`, 5000)).toBe(true);
      }
    });

    it("arguments - a TTL that is not a positive integer of milliseconds is rejected", async () => {
      newTask();
      await expect(s.manager.acquire(task, "a", 0)).rejects.toThrow(RangeError);
      await expect(s.manager.acquire(task, "a", 1.5)).rejects.toThrow(RangeError);
      await expect(s.manager.renew(task, "a", -1)).rejects.toThrow(RangeError);
      await expect(s.manager.acquire(task, "", 100)).rejects.toThrow(RangeError);
      expect(await s.manager.held([task])).toEqual([false]);
    });
  });
}

function closedManagerContract(name: string, make: () => LeaseManager): void {
  it(`close - a closed ${name} manager rejects every call with UnavailableError`, async () => {
    const m = make();
    await m.close();
    await expect(m.acquire("x", "a", 100)).rejects.toBeInstanceOf(UnavailableError);
    await expect(m.renew("x", "a", 100)).rejects.toBeInstanceOf(UnavailableError);
    await expect(m.release("x", "a")).rejects.toBeInstanceOf(UnavailableError);
    await expect(m.held(["x"])).rejects.toBeInstanceOf(UnavailableError);
  });
}

// --- memory -------------------------------------------------------------------

{
  let memory: MemoryLeaseManager;
  leaseContract(
    "memory",
    async () => {
      memory = new MemoryLeaseManager();
      return { manager: memory, contenders: (n) => Array.from({ length: n }, () => memory) };
    },
    async () => memory.close(),
  );
  describe("leases (memory) - lifecycle", () => {
    closedManagerContract("memory", () => new MemoryLeaseManager());

    it("clock - expiry follows the injected monotonic clock, not timers", async () => {
      let now = 1_000;
      const m = new MemoryLeaseManager({ now: () => now });
      expect(await m.acquire("t", "a", 100)).toBe(true);
      now += 99;
      expect(await m.held(["t"])).toEqual([true]);
      now += 1;
      expect(await m.held(["t"])).toEqual([false]);
      expect(await m.acquire("t", "b", 100)).toBe(true);
    });
  });
}

// --- redis --------------------------------------------------------------------

describe.skipIf(!hasService("redis"))("leases (redis)", () => {
  const prefix = uniqueId("clawfleet-test-");
  const connections: Redis[] = [];
  const connect = () => {
    const c = createRedis(REDIS_TEST_URL, { name: "lease-test" });
    connections.push(c);
    return c;
  };

  afterAll(async () => {
    const admin = connections[0];
    if (admin) {
      const keys = await admin.keys(`${prefix}:*`);
      if (keys.length > 0) await admin.del(...keys);
      expect(await admin.keys(`${prefix}:*`)).toEqual([]);
    }
    await Promise.all(connections.map((c) => c.quit()));
  });

  leaseContract(
    "redis",
    async () => {
      // Four connections, so contenders race over separate sockets, as separate planners do.
      const pool = [connect(), connect(), connect(), connect()];
      const managers = pool.map((c) => new RedisLeaseManager(c, { prefix }));
      const first = managers[0];
      if (!first) throw new Error("no connection");
      return {
        manager: first,
        contenders: (n) => Array.from({ length: n }, (_, i) => managers[i % managers.length] ?? first),
      };
    },
    async () => {},
  );

  closedManagerContract("redis", () => new RedisLeaseManager(connect(), { prefix }));

  it("keys - leases live at <prefix>:lease:<taskId> with the owner as value and a PX expiry", async () => {
    const redis = connect();
    const m = new RedisLeaseManager(redis, { prefix });
    expect(await m.acquire("t-key", "owner-1", 5000)).toBe(true);
    expect(await redis.get(`${prefix}:lease:t-key`)).toBe("owner-1");
    const pttl = await redis.pttl(`${prefix}:lease:t-key`);
    expect(pttl).toBeGreaterThan(4000);
    expect(pttl).toBeLessThanOrEqual(5000);
  });

  it("unavailable - renew throws UnavailableError (not false) when Redis cannot be reached, so the caller can tell", async () => {
    const logged: string[] = [];
    // Nothing listens on port 1: every connection attempt is refused at once.
    const down = createRedis("redis://user:s3cret-pw@127.0.0.1:1", {
      name: "lease-test-down",
      logger: { info: (m) => void logged.push(m), warn: (m) => void logged.push(m) },
      maxRetriesPerRequest: 1,
      maxReconnectDelayMs: 100,
    });
    try {
      const m = new RedisLeaseManager(down, { prefix });
      await expect(m.renew("t", "a", 1000)).rejects.toBeInstanceOf(UnavailableError);
      await expect(m.acquire("t", "a", 1000)).rejects.toBeInstanceOf(UnavailableError);
      await expect(m.held(["t"])).rejects.toBeInstanceOf(UnavailableError);
      await expect(m.release("t", "a")).rejects.toMatchObject({ retryable: true, type: "unavailable" });
    } finally {
      down.disconnect();
    }
    // One line for the whole outage, and the password never in it.
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain("127.0.0.1:1");
    expect(logged.join("\n")).not.toContain("s3cret-pw");
  });

  it("scripts - a server error reply is a bug, not an outage: it passes through unwrapped", async () => {
    const redis = connect();
    const m = new RedisLeaseManager(redis, { prefix });
    await redis.hset(m.key("t-wrongtype"), "f", "v");
    // The Lua GET on a hash is a WRONGTYPE error reply.
    const renewErr = await m.renew("t-wrongtype", "a", 1000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(renewErr).toBeInstanceOf(Error);
    expect(renewErr).not.toBeInstanceOf(UnavailableError);
  });
});
