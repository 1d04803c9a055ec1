/**
 * The distributed-mode channel adapter (src/queue/redisStreamsAdapter.ts) against
 * a throwaway redis-server that keeps nothing on disk, restarted under it: the
 * stream and the consumer group vanish. The consumer re-creates its group and
 * goes on receiving, and a handler that was running through the outage neither
 * crashes the process nor keeps its in-flight slot when its ACK cannot land.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, it } from "vitest";
import { channelsMiddleware, sendToChannel } from "../../src/queue/channels";
import { PLANNERS_GROUP, TASKS_READY_CHANNEL } from "../../src/contracts";
import { redisServer, type Server } from "../../testkit/crash";
import { hasService, uniqueId } from "../helpers/services";

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe.skipIf(!hasService("redis"))("channels - Redis restarting empty", () => {
  let redis: Server;
  beforeAll(async () => {
    redis = await redisServer();
    await redis.start();
  });
  afterAll(async () => {
    await redis?.destroy();
  });

  it("restart - the consumer re-creates its lost group and keeps receiving; a handler spanning the outage frees its slot", async () => {
    const namespace = uniqueId("chanrestart");
    const received: string[] = [];
    let releaseSlow: () => void = () => undefined;
    const slowGate = new Promise<void>((r) => (releaseSlow = r));
    let slowStarted = false;
    const mw = () => channelsMiddleware({ mode: "distributed", redisUrl: redis.url, namespace });
    const consumer = new ServiceBroker({ logger: false, namespace, nodeID: uniqueId("consumer-"), middlewares: [mw()] });
    consumer.createService({
      name: "planner",
      channels: {
        [TASKS_READY_CHANNEL]: {
          group: PLANNERS_GROUP,
          maxInFlight: 2,
          async handler(payload: { taskId: string }) {
            if (payload.taskId === "slow") {
              slowStarted = true;
              await slowGate;
            }
            received.push(payload.taskId);
          },
        },
      },
    });
    const publisher = new ServiceBroker({ logger: false, namespace, nodeID: uniqueId("publisher-"), middlewares: [mw()] });
    await Promise.all([consumer.start(), publisher.start()]);
    try {
      await sendToChannel(publisher, TASKS_READY_CHANNEL, { taskId: "before", reason: "submitted" });
      await sendToChannel(publisher, TASKS_READY_CHANNEL, { taskId: "slow", reason: "submitted" });
      await waitFor("the first wake-up handled and the second in flight", () => received.includes("before") && slowStarted);

      // Redis dies and comes back with nothing: no stream, no group, no pending entries.
      await redis.crash();
      await sleep(500);
      await redis.start();
      releaseSlow(); // its ACK now goes to a group that no longer exists

      for (let i = 0; i < 5; i++) await sendToChannel(publisher, TASKS_READY_CHANNEL, { taskId: `after-${i}`, reason: "submitted" });
      await waitFor("the wake-ups published after the restart", () => [0, 1, 2, 3, 4].every((i) => received.includes(`after-${i}`)));
      await waitFor("the handler that spanned the outage", () => received.includes("slow"));

      // No in-flight slot is left behind by the ACK that could not land.
      const adapter = (consumer as unknown as { channelAdapter: { activeMessages: Map<string, unknown[]> } }).channelAdapter;
      await waitFor("every in-flight slot freed", () => [...adapter.activeMessages.values()].every((ids) => ids.length === 0), 5000);
    } finally {
      await Promise.all([consumer.stop(), publisher.stop()]);
    }
  }, 60_000);
});
