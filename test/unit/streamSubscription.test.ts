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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("streamSubscription", () => {
  const started: ServiceBroker[] = [];
  const subscriptions: StreamSubscription[] = [];
  afterEach(async () => {
    for (const s of subscriptions.splice(0)) s.stop();
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
    subscriptions.push(subscription);
    started.push(api, planner);
    await Promise.all([api.start(), planner.start()]);
    // The planner has the api's INFO: whatever the api listens to would be listed from here on.
    await until(() => planner.registry.nodes.get("api")?.available === true);
    /** The api nodes the planner would send a step event to. */
    const listeners = () => (planner.registry.events.getAllEndpoints(STEP) as Array<{ id: string }>).map((e) => e.id);
    return { api, planner, hub, subscription, listeners };
  }

  it("no stream open: the planner sends the api no task event; the first stream subscribes it at once, and its task's events poke it", async () => {
    const { planner, hub, subscription, listeners } = await cluster({ announcePokesMs: [] });
    expect(listeners()).toEqual([]);
    expect(subscription.subscribed).toBe(false);

    let pokes = 0;
    const taskId = randomUUID();
    const opened = Date.now();
    const unwatch = hub.watch(taskId, () => pokes++);
    await until(() => listeners().length === 1);
    // Announced at once, not after Moleculer's second of debounce.
    expect(Date.now() - opened).toBeLessThan(900);
    expect(listeners()).toEqual(["api"]);
    expect(subscription.subscribed).toBe(true);
    // Once registered, the open streams looked again (events emitted before it did not come).
    await until(() => pokes === 1);

    await planner.emit(STEP, { task_id: randomUUID() });
    await planner.emit(STEP, { task_id: taskId });
    await until(() => pokes === 2);
    await sleep(100);
    expect(pokes).toBe(2);
    unwatch();
  });

  it("the last stream closing unsubscribes once the linger has passed; a stream opened within it keeps the subscription; cycles leave no group behind", async () => {
    const { hub, subscription, listeners, planner } = await cluster({ lingerMs: 300, announcePokesMs: [] });
    const groups = () => (planner.registry.events as unknown as { events: unknown[] }).events.length;
    const first = hub.watch(randomUUID(), () => undefined);
    await until(() => listeners().length === 1);
    const groupsSubscribed = groups();
    first();
    // Closing twice counts once: the second stream below is the only one open.
    first();
    await sleep(100);
    const second = hub.watch(randomUUID(), () => undefined);
    await sleep(500);
    expect(subscription.subscribed).toBe(true);
    expect(listeners()).toEqual(["api"]);

    second();
    await until(() => !subscription.subscribed);
    await until(() => listeners().length === 0);
    expect(hub.open).toBe(0);

    // Subscribed and unsubscribed again: the same event group, not one more on the planner.
    const third = hub.watch(randomUUID(), () => undefined);
    await until(() => listeners().length === 1);
    expect(groups()).toBe(groupsSubscribed);
    third();
    await until(() => listeners().length === 0);
  });

  it("once announced, every open stream looks again at the times given, and then no more", async () => {
    const { hub } = await cluster({ announcePokesMs: [100, 300] });
    let pokes = 0;
    const unwatch = hub.watch(randomUUID(), () => pokes++);
    // The poke once registered, then the two after the announcement; no event comes.
    await until(() => pokes === 3, 3_000);
    await sleep(600);
    expect(pokes).toBe(3);
    unwatch();
  });

  it("stopped while subscribed: the service goes, and a stream opening makes none", async () => {
    const { hub, subscription, listeners } = await cluster({ announcePokesMs: [] });
    const before = hub.watch(randomUUID(), () => undefined);
    await until(() => listeners().length === 1);
    subscription.stop();
    await until(() => listeners().length === 0);
    before();
    const unwatch = hub.watch(randomUUID(), () => undefined);
    await sleep(300);
    expect(subscription.subscribed).toBe(false);
    expect(listeners()).toEqual([]);
    unwatch();
  });
});
