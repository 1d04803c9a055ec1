/**
 * streamSubscription - the api hears the task lifecycle events only while it serves a stream: two real
 * Moleculer brokers on the in-memory transporter, an api with its stream hub and a planner that emits.
 */
import { randomUUID } from "node:crypto";
import { ServiceBroker } from "moleculer";
import { afterEach, describe, expect, it } from "vitest";
import { StreamSubscription, type StreamSubscriptionOptions } from "../../src/api/streamSubscription";
import { StreamHub } from "../../src/api/taskStream";

const STEP = "clawfleet.task.step";

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("streamSubscription", () => {
  const started: ServiceBroker[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((b) => b.stop()));
  });

  async function cluster(opts: StreamSubscriptionOptions) {
    const namespace = `streams-${randomUUID()}`;
    const make = (nodeID: string) => new ServiceBroker({ nodeID, namespace, transporter: "Fake", logger: false, heartbeatInterval: 1 });
    const api = make("api");
    const planner = make("planner");
    const presence = { watching: () => subscription.watching(), idle: () => subscription.idle() };
    const hub = new StreamHub(presence);
    const subscription = new StreamSubscription(api, hub, opts);
    started.push(api, planner);
    await Promise.all([api.start(), planner.start()]);
    await until(() => planner.registry.nodes.get("api")?.available === true);
    /** The api nodes the planner would send a step event to. */
    const listeners = () => planner.registry.events.getAllEndpoints(STEP).map((e: { id: string }) => e.id);
    return { api, planner, hub, subscription, listeners };
  }

  it("no stream open: the planner sends the api no task event; the first stream subscribes it, and its task's events poke it", async () => {
    const { planner, hub, subscription, listeners } = await cluster({ announceMs: 0, announcePollMs: 60_000 });
    expect(listeners()).toEqual([]);
    expect(subscription.subscribed).toBe(false);

    let pokes = 0;
    const taskId = randomUUID();
    const unwatch = hub.watch(taskId, () => pokes++);
    await until(() => listeners().length === 1);
    expect(listeners()).toEqual(["api"]);
    expect(subscription.subscribed).toBe(true);

    await planner.emit(STEP, { task_id: randomUUID() });
    await planner.emit(STEP, { task_id: taskId });
    await until(() => pokes === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(pokes).toBe(1);
    unwatch();
  });

  it("the last stream closing unsubscribes once the linger has passed; a stream opened within it keeps the subscription", async () => {
    const { hub, subscription, listeners } = await cluster({ lingerMs: 300, announceMs: 0 });
    const first = hub.watch(randomUUID(), () => undefined);
    await until(() => listeners().length === 1);
    first();
    // Closing twice counts once: the second stream below is the only one open.
    first();
    await new Promise((r) => setTimeout(r, 100));
    const second = hub.watch(randomUUID(), () => undefined);
    await new Promise((r) => setTimeout(r, 500));
    expect(subscription.subscribed).toBe(true);
    expect(listeners()).toEqual(["api"]);

    second();
    await until(() => !subscription.subscribed);
    await until(() => listeners().length === 0);
    expect(hub.open).toBe(0);
  });

  it("while the new subscription is being announced, every open stream looks again on its own", async () => {
    const { hub } = await cluster({ announceMs: 600, announcePollMs: 100 });
    let pokes = 0;
    const unwatch = hub.watch(randomUUID(), () => pokes++);
    await until(() => pokes >= 3, 2_000);
    // Once the window is over, no event having come, nothing pokes it any more.
    await new Promise((r) => setTimeout(r, 800));
    const seen = pokes;
    expect(seen).toBeLessThanOrEqual(7);
    await new Promise((r) => setTimeout(r, 500));
    expect(pokes).toBe(seen);
    unwatch();
  });

  it("once stopped, a stream opening makes no subscription", async () => {
    const { hub, subscription, listeners } = await cluster({});
    subscription.stop();
    const unwatch = hub.watch(randomUUID(), () => undefined);
    await new Promise((r) => setTimeout(r, 200));
    expect(subscription.subscribed).toBe(false);
    expect(listeners()).toEqual([]);
    unwatch();
  });
});
