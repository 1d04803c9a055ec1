/**
 * The distributed-mode channel configuration against real Redis Streams: wake-ups
 * published before the consumer group exists are delivered, and `queueStats`
 * reports the group's backlog as the metrics service and the autoscaler read it.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_CLAIM_INTERVAL_MS,
  DEFAULT_MIN_IDLE_TIME_MS,
  channelsMiddleware,
  queueStats,
  sendToChannel,
} from "../../src/queue/channels";
import { TASKS_DEAD_CHANNEL } from "../../src/queue/wakeups";
import { createRedis } from "../../src/redis/connection";
import { PLANNERS_GROUP, TASKS_READY_CHANNEL } from "../../src/contracts";
import { REDIS_TEST_URL, hasService, uniqueId } from "../helpers/services";

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe.skipIf(!hasService("redis"))("channels (redis streams)", () => {
  let redis: Redis;
  const namespaces: string[] = [];
  const brokers: ServiceBroker[] = [];

  function broker(namespace: string, services: ServiceSchema[] = []): ServiceBroker {
    const b = new ServiceBroker({
      logger: false,
      namespace,
      nodeID: uniqueId("node-"),
      middlewares: [channelsMiddleware({ mode: "distributed", redisUrl: REDIS_TEST_URL, namespace })],
    });
    for (const s of services) b.createService(s);
    brokers.push(b);
    return b;
  }

  function newNamespace(): string {
    const ns = uniqueId("clawfleet-test-");
    namespaces.push(ns);
    return ns;
  }

  beforeAll(() => {
    redis = createRedis(REDIS_TEST_URL, { name: "channels-test" });
  });

  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.stop()));
  });

  afterAll(async () => {
    for (const ns of namespaces) {
      const keys = await redis.keys(`${ns}.*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    await redis.quit();
  });

  it("startID 0 - wake-ups published before the consumer group exists are delivered, and stats follow the backlog", async () => {
    const ns = newNamespace();
    const publisher = broker(ns);
    await publisher.start();
    for (let i = 0; i < 5; i++) await sendToChannel(publisher, TASKS_READY_CHANNEL, { taskId: `t-${i}`, reason: "submitted" });

    // No group yet: everything in the stream is what the group will read.
    expect(await queueStats(redis, ns, TASKS_READY_CHANNEL, PLANNERS_GROUP)).toEqual({ waiting: 5, inFlight: 0 });

    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const received: unknown[] = [];
    const consumer = broker(ns, [
      {
        name: "planner",
        channels: {
          [TASKS_READY_CHANNEL]: {
            group: PLANNERS_GROUP,
            maxInFlight: 2,
            handler: async (payload: unknown) => {
              received.push(payload);
              await gate;
            },
          },
        },
      },
    ]);
    await consumer.start();

    await waitFor("two wake-ups in flight", () => received.length === 2);
    await waitFor("stats with two pending", async () => (await queueStats(redis, ns, TASKS_READY_CHANNEL, PLANNERS_GROUP)).inFlight === 2);
    expect(await queueStats(redis, ns, TASKS_READY_CHANNEL, PLANNERS_GROUP)).toEqual({ waiting: 3, inFlight: 2 });

    release();
    await waitFor("all five delivered", () => received.length === 5);
    await waitFor("all acknowledged", async () => {
      const s = await queueStats(redis, ns, TASKS_READY_CHANNEL, PLANNERS_GROUP);
      return s.waiting === 0 && s.inFlight === 0;
    });
    expect(received).toEqual(Array.from({ length: 5 }, (_, i) => ({ taskId: `t-${i}`, reason: "submitted" })));
  });

  it("stats - a channel nobody published to reports an empty queue", async () => {
    const ns = newNamespace();
    expect(await queueStats(redis, ns, TASKS_READY_CHANNEL, PLANNERS_GROUP)).toEqual({ waiting: 0, inFlight: 0 });
  });

  it("stats - when Redis cannot report lag, the unread entries are counted", async () => {
    const ns = newNamespace();
    const key = `${ns}.${TASKS_READY_CHANNEL}`;
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await redis.xadd(key, "*", "payload", "{}")) ?? "");
    await redis.xgroup("CREATE", key, PLANNERS_GROUP, "0");
    await redis.xreadgroup("GROUP", PLANNERS_GROUP, "c1", "COUNT", 1, "STREAMS", key, ">");
    // Deleting an unread entry makes Redis 7 report lag as nil.
    await redis.xdel(key, ids[2] ?? "");
    expect(await queueStats(redis, ns, TASKS_READY_CHANNEL, PLANNERS_GROUP)).toEqual({ waiting: 2, inFlight: 1 });
  });

  it("dead letters - the dead-letter stream keeps only the newest deadLetterMaxLen entries", async () => {
    const ns = newNamespace();
    let attempts = 0;
    const b = new ServiceBroker({
      logger: false,
      namespace: ns,
      nodeID: uniqueId("node-"),
      middlewares: [channelsMiddleware({ mode: "distributed", redisUrl: REDIS_TEST_URL, namespace: ns, deadLetterMaxLen: 3 })],
    });
    brokers.push(b);
    b.createService({
      name: "planner",
      channels: {
        [TASKS_READY_CHANNEL]: {
          group: PLANNERS_GROUP,
          maxRetries: 0,
          handler: () => {
            attempts++;
            throw new Error("boom");
          },
        },
      },
    });
    await b.start();
    for (let i = 0; i < 6; i++) await sendToChannel(b, TASKS_READY_CHANNEL, { taskId: `t-${i}`, reason: "submitted" });
    const dead = `${ns}.${TASKS_DEAD_CHANNEL}`;
    await waitFor("six failed deliveries", () => attempts >= 6);
    await waitFor("the last one dead-lettered", async () => {
      const last = await redis.xrevrange(dead, "+", "-", "COUNT", 1);
      return last[0]?.[1]?.[1]?.includes("t-5") === true;
    });
    expect(await redis.xlen(dead)).toBe(3);
    const kept = (await redis.xrange(dead, "-", "+")).map(([, fields]) => JSON.parse(fields[1] ?? "null") as { taskId: string });
    expect(kept.map((k) => k.taskId)).toEqual(["t-3", "t-4", "t-5"]);
  });

  it("options - stream keys, dead letters, claim timing and startID are what the design says", async () => {
    const ns = newNamespace();
    const b = broker(ns);
    const opts = (b as unknown as { channelAdapter: { opts: Record<string, unknown> } }).channelAdapter.opts;
    expect(opts).toMatchObject({
      prefix: ns,
      serializer: "JSON",
      deadLettering: { enabled: true, queueName: TASKS_DEAD_CHANNEL },
      redis: {
        url: REDIS_TEST_URL,
        consumerOptions: { startID: "0", minIdleTime: DEFAULT_MIN_IDLE_TIME_MS, claimInterval: DEFAULT_CLAIM_INTERVAL_MS },
      },
    });
    expect(DEFAULT_MIN_IDLE_TIME_MS).toBe(600_000);

    const custom = new ServiceBroker({
      logger: false,
      middlewares: [channelsMiddleware({ mode: "distributed", redisUrl: REDIS_TEST_URL, namespace: ns, minIdleTimeMs: 120_000, claimIntervalMs: 1000 })],
    });
    const customOpts = (custom as unknown as { channelAdapter: { opts: { redis: { consumerOptions: unknown } } } }).channelAdapter.opts;
    expect(customOpts.redis.consumerOptions).toMatchObject({ minIdleTime: 120_000, claimInterval: 1000 });
    expect(() => channelsMiddleware({ mode: "distributed", redisUrl: REDIS_TEST_URL, namespace: ns, minIdleTimeMs: 0 })).toThrow(RangeError);
  });
  it("publishing - wake-ups sent in one tick leave in a few socket writes, and each is stored", async () => {
    const ns = newNamespace();
    const publisher = broker(ns);
    await publisher.start();
    const adapter = (publisher as unknown as { channelAdapter: { clients: Map<string, Redis>; pubName: string } }).channelAdapter;
    const pub = adapter.clients.get(adapter.pubName) as Redis;
    const stream = (pub as unknown as { stream: { write: (...a: unknown[]) => boolean } }).stream;
    const write = stream.write.bind(stream);
    let writes = 0;
    stream.write = (...a: unknown[]) => {
      writes++;
      return write(...a);
    };
    await Promise.all(Array.from({ length: 50 }, (_, i) => sendToChannel(publisher, TASKS_READY_CHANNEL, { taskId: `t-${i}`, reason: "submitted" })));
    stream.write = write;
    expect(writes).toBeGreaterThan(0);
    expect(writes).toBeLessThanOrEqual(5);
    expect(await redis.xlen(`${ns}.${TASKS_READY_CHANNEL}`)).toBe(50);
    // The clients that block on reads are never pipelined.
    for (const [name, client] of adapter.clients) expect([name, client.options.enableAutoPipelining ?? false]).toEqual([name, name === adapter.pubName]);
  });
});
