/**
 * The in-process channel adapter behind a real ServiceBroker and the real
 * Channels middleware: what embedded mode's services see.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Errors, ServiceBroker, type ServiceSchema } from "moleculer";
import { afterEach, describe, expect, it } from "vitest";
import { channelsMiddleware, sendToChannel } from "../../src/queue/channels";
import { type MemoryAdapter, type MemoryAdapterOptions, type MemoryRawMessage, memoryAdapter, memoryAdapterOf } from "../../src/queue/memoryAdapter";

const CHANNEL = "tasks.ready";
const brokers: ServiceBroker[] = [];

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.stop()));
});

function startBroker(services: ServiceSchema[], opts: MemoryAdapterOptions = {}): { broker: ServiceBroker; adapter: MemoryAdapter; ready: Promise<void> } {
  const adapter = memoryAdapter({ retryDelayMs: 5, ...opts });
  const broker = new ServiceBroker({
    logger: false,
    namespace: `mem${randomUUID().slice(0, 8)}`,
    middlewares: [channelsMiddleware({ mode: "embedded", adapter })],
  });
  for (const s of services) broker.createService(s);
  brokers.push(broker);
  return { broker, adapter, ready: broker.start() };
}

interface ConsumerOptions {
  name: string;
  group?: string;
  channel?: string;
  maxInFlight?: number;
  maxRetries?: number;
  deadLettering?: { enabled: boolean; queueName: string };
  handle: (payload: unknown, raw: MemoryRawMessage) => unknown;
}

function consumer(o: ConsumerOptions): ServiceSchema {
  return {
    name: o.name,
    channels: {
      [o.channel ?? CHANNEL]: {
        ...(o.group !== undefined ? { group: o.group } : {}),
        maxInFlight: o.maxInFlight ?? 1,
        maxRetries: o.maxRetries ?? 3,
        ...(o.deadLettering ? { deadLettering: o.deadLettering } : {}),
        handler: (payload: unknown, raw: MemoryRawMessage) => o.handle(payload, raw),
      },
    },
  };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A promise the test resolves when it wants handlers to finish. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe("memory adapter", () => {
  it("delivery - the subscriber receives the payload and headers as sent, as a copy", async () => {
    const got: { payload: unknown; raw: MemoryRawMessage }[] = [];
    const { broker, ready } = startBroker([consumer({ name: "c", handle: (payload, raw) => void got.push({ payload, raw }) })]);
    await ready;
    const sent = { taskId: "t-1", reason: "submitted", nested: { n: 1 } };
    await sendToChannel(broker, CHANNEL, sent, { headers: { traceparent: "00-abc" } });
    await waitFor("delivery", () => got.length === 1);
    expect(got[0]?.payload).toEqual(sent);
    expect(got[0]?.payload).not.toBe(sent);
    expect(got[0]?.raw.headers).toEqual({ traceparent: "00-abc" });
    expect(got[0]?.raw.redelivered).toBe(0);
  });

  it("groups - every consumer group gets every message once", async () => {
    const a: unknown[] = [];
    const b: unknown[] = [];
    const { broker, ready } = startBroker([
      consumer({ name: "a", group: "group-a", handle: (p) => void a.push(p) }),
      consumer({ name: "b", group: "group-b", handle: (p) => void b.push(p) }),
    ]);
    await ready;
    for (let i = 0; i < 10; i++) await sendToChannel(broker, CHANNEL, { i });
    await waitFor("both groups", () => a.length === 10 && b.length === 10);
    await sleep(20);
    expect(a).toEqual(Array.from({ length: 10 }, (_, i) => ({ i })));
    expect(b).toEqual(a);
  });

  it("groups - consumers of one group share the messages round-robin, none handled twice", async () => {
    const seen: { by: string; i: number }[] = [];
    const handle = (by: string) => async (p: unknown) => {
      seen.push({ by, i: (p as { i: number }).i });
      await sleep(2);
    };
    const { broker, ready } = startBroker([
      consumer({ name: "one", group: "planners", handle: handle("one") }),
      consumer({ name: "two", group: "planners", handle: handle("two") }),
    ]);
    await ready;
    for (let i = 0; i < 20; i++) await sendToChannel(broker, CHANNEL, { i });
    await waitFor("20 messages", () => seen.length === 20);
    await sleep(20);
    expect(seen).toHaveLength(20);
    expect(new Set(seen.map((s) => s.i)).size).toBe(20);
    // Round-robin among free consumers: the split is even up to timing.
    expect(seen.filter((s) => s.by === "one").length).toBeGreaterThanOrEqual(5);
    expect(seen.filter((s) => s.by === "two").length).toBeGreaterThanOrEqual(5);
  });

  it("maxInFlight - a subscriber never runs more handlers at once than its maxInFlight", async () => {
    let running = 0;
    let peak = 0;
    let done = 0;
    const { broker, ready } = startBroker([
      consumer({
        name: "c",
        maxInFlight: 3,
        handle: async () => {
          peak = Math.max(peak, ++running);
          await sleep(5);
          running--;
          done++;
        },
      }),
    ]);
    await ready;
    for (let i = 0; i < 30; i++) await sendToChannel(broker, CHANNEL, { i });
    await waitFor("30 handled", () => done === 30);
    expect(peak).toBe(3);
  });

  it("retries - a message that fails every delivery is delivered maxRetries times in all, then dead-lettered with its origin", async () => {
    let attempts = 0;
    const dead: { payload: unknown; raw: MemoryRawMessage }[] = [];
    const { broker, adapter, ready } = startBroker([
      consumer({
        name: "c",
        group: "planners",
        maxRetries: 3,
        deadLettering: { enabled: true, queueName: "tasks.dead" },
        handle: () => {
          attempts++;
          throw new Error("boom");
        },
      }),
      consumer({ name: "dlq", channel: "tasks.dead", handle: (payload, raw) => void dead.push({ payload, raw }) }),
    ]);
    await ready;
    await sendToChannel(broker, CHANNEL, { taskId: "t-dead" }, { headers: { traceparent: "00-x" } });
    await waitFor("dead letter", () => dead.length === 1);
    expect(attempts).toBe(3);
    expect(dead[0]?.payload).toEqual({ taskId: "t-dead" });
    expect(dead[0]?.raw.headers).toMatchObject({
      traceparent: "00-x",
      "x-original-channel": `${broker.namespace}.${CHANNEL}`,
      "x-original-group": "planners",
    });
    expect(adapter.depth(CHANNEL, "planners")).toEqual({ waiting: 0, inFlight: 0 });
  });

  it("retries - the dead-letter topic keeps only the newest deadLetterMaxLen messages", async () => {
    let attempts = 0;
    const { broker, ready } = startBroker(
      [
        consumer({
          name: "c",
          group: "planners",
          maxRetries: 1,
          deadLettering: { enabled: true, queueName: "tasks.dead" },
          handle: () => {
            attempts++;
            throw new Error("boom");
          },
        }),
      ],
      { deadLetterMaxLen: 2 },
    );
    await ready;
    for (let i = 0; i < 5; i++) await sendToChannel(broker, CHANNEL, { i });
    await waitFor("5 failed deliveries", () => attempts === 5);
    await sleep(20);
    // A reader that joins now finds what the topic kept: the newest two.
    const dead: unknown[] = [];
    broker.createService(consumer({ name: "dlq", channel: "tasks.dead", handle: (payload) => void dead.push(payload) }));
    await waitFor("dead letters read", () => dead.length >= 2);
    await sleep(20);
    expect(dead).toEqual([{ i: 3 }, { i: 4 }]);
  });

  it("retries - a message that fails once is delivered again and not dead-lettered", async () => {
    const deliveries: number[] = [];
    const dead: unknown[] = [];
    const { broker, ready } = startBroker([
      consumer({
        name: "c",
        deadLettering: { enabled: true, queueName: "tasks.dead" },
        handle: (_p, raw) => {
          deliveries.push(raw.redelivered);
          if (raw.redelivered === 0) throw new Error("transient");
        },
      }),
      consumer({ name: "dlq", channel: "tasks.dead", handle: (p) => void dead.push(p) }),
    ]);
    await ready;
    await sendToChannel(broker, CHANNEL, { taskId: "t" });
    await waitFor("redelivery", () => deliveries.length === 2);
    await sleep(30);
    expect(deliveries).toEqual([0, 1]);
    expect(dead).toEqual([]);
  });

  it("retries - without dead lettering, a message failing every delivery is dropped after maxRetries deliveries", async () => {
    let attempts = 0;
    const { broker, adapter, ready } = startBroker([
      consumer({
        name: "c",
        group: "g",
        maxRetries: 2,
        handle: () => {
          attempts++;
          throw new Error("boom");
        },
      }),
    ]);
    await ready;
    await sendToChannel(broker, CHANNEL, { taskId: "t" });
    await waitFor("two attempts", () => attempts === 2);
    await sleep(30);
    expect(attempts).toBe(2);
    expect(adapter.depth(CHANNEL, "g")).toEqual({ waiting: 0, inFlight: 0 });
    expect(adapter.depth("tasks.dead")).toEqual({ waiting: 0, inFlight: 0 });
  });

  it("backlog - messages published before any subscriber exists are kept and delivered when one subscribes", async () => {
    const { broker, adapter, ready } = startBroker([]);
    await ready;
    for (let i = 0; i < 5; i++) await sendToChannel(broker, CHANNEL, { i });
    expect(adapter.depth(CHANNEL)).toEqual({ waiting: 5, inFlight: 0 });
    expect(adapter.depth(CHANNEL, "planners")).toEqual({ waiting: 5, inFlight: 0 });

    const got: unknown[] = [];
    broker.createService(consumer({ name: "late", group: "planners", handle: (p) => void got.push(p) }));
    await waitFor("backlog", () => got.length === 5);
    expect(got).toEqual(Array.from({ length: 5 }, (_, i) => ({ i })));
    expect(adapter.depth(CHANNEL, "planners")).toEqual({ waiting: 0, inFlight: 0 });
  });

  it("backlog - a group whose consumers all left keeps its messages until one comes back", async () => {
    const got: unknown[] = [];
    const schema = consumer({ name: "c", group: "planners", handle: (p) => void got.push(p) });
    const { broker, adapter, ready } = startBroker([schema]);
    await ready;
    const svc = broker.getLocalService("c");
    if (!svc) throw new Error("service c missing");
    await broker.destroyService(svc);
    for (let i = 0; i < 3; i++) await sendToChannel(broker, CHANNEL, { i });
    expect(adapter.depth(CHANNEL, "planners")).toEqual({ waiting: 3, inFlight: 0 });
    broker.createService(schema);
    await waitFor("kept messages", () => got.length === 3);
  });

  it("burst - 10,000 messages published at once all arrive, each exactly once", async () => {
    const seen = new Set<number>();
    let duplicates = 0;
    const { broker, adapter, ready } = startBroker([
      consumer({
        name: "c",
        maxInFlight: 16,
        handle: async (p) => {
          const i = (p as { i: number }).i;
          if (seen.has(i)) duplicates++;
          seen.add(i);
          await Promise.resolve();
        },
      }),
    ]);
    await ready;
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => sendToChannel(broker, CHANNEL, { i })));
    await waitFor("10,000 messages", () => seen.size === 10_000, 20_000);
    expect(duplicates).toBe(0);
    await waitFor("drained", () => adapter.depth(CHANNEL).inFlight === 0);
    expect(adapter.depth(CHANNEL)).toEqual({ waiting: 0, inFlight: 0 });
  });

  it("unsubscribe - stopping a consumer waits for its in-flight handler and hands it nothing new", async () => {
    const g = gate();
    let started = 0;
    let finished = 0;
    const { broker, adapter, ready } = startBroker([
      consumer({
        name: "c",
        group: "planners",
        handle: async () => {
          started++;
          await g.wait;
          finished++;
        },
      }),
    ]);
    await ready;
    for (let i = 0; i < 3; i++) await sendToChannel(broker, CHANNEL, { i });
    await waitFor("first handler", () => started === 1);

    const svc = broker.getLocalService("c");
    if (!svc) throw new Error("service c missing");
    let stopped = false;
    const stopping = broker.destroyService(svc).then(() => (stopped = true));
    await sleep(50);
    expect(stopped).toBe(false);
    g.open();
    await stopping;
    expect(finished).toBe(1);
    expect(started).toBe(1);
    expect(adapter.depth(CHANNEL, "planners")).toEqual({ waiting: 2, inFlight: 0 });
  });

  it("depth - reports waiting and in-flight messages of a group", async () => {
    const g = gate();
    const { broker, ready } = startBroker([consumer({ name: "c", group: "planners", maxInFlight: 2, handle: () => g.wait })]);
    await ready;
    const adapter = memoryAdapterOf(broker);
    if (!adapter) throw new Error("memoryAdapterOf found no memory adapter");
    for (let i = 0; i < 5; i++) await sendToChannel(broker, CHANNEL, { i });
    await waitFor("two in flight", () => adapter.depth(CHANNEL, "planners").inFlight === 2);
    expect(adapter.depth(CHANNEL, "planners")).toEqual({ waiting: 3, inFlight: 2 });
    expect(adapter.depth(CHANNEL)).toEqual({ waiting: 3, inFlight: 2 });
    expect(adapter.depth("no.such.channel")).toEqual({ waiting: 0, inFlight: 0 });
    g.open();
    await waitFor("drained", () => adapter.depth(CHANNEL).waiting === 0 && adapter.depth(CHANNEL).inFlight === 0);
  });

  it("started() - sendToChannel inside a service's started() rejects: the adapter connects after services start, as with Redis", async () => {
    let failure: unknown;
    const { broker, ready } = startBroker([
      {
        name: "eager",
        async started() {
          failure = await sendToChannel(this.broker, CHANNEL, { early: true }).then(
            () => undefined,
            (err: unknown) => err,
          );
        },
      },
    ]);
    await ready;
    expect(failure).toBeInstanceOf(Errors.MoleculerRetryableError);
    await expect(sendToChannel(broker, CHANNEL, { late: true })).resolves.toBeUndefined();
  });

  it("stopped - publishing after the broker stopped rejects instead of losing the message silently", async () => {
    const { broker, ready } = startBroker([]);
    await ready;
    await broker.stop();
    await expect(sendToChannel(broker, CHANNEL, { taskId: "t" })).rejects.toBeInstanceOf(Errors.MoleculerRetryableError);
  });
});
