/**
 * `GET /v1/queues`: the wake-up queue's backlog as this mode's backend measures it
 * (Redis Streams in a cluster, shared by every node; the in-process queue embedded),
 * with the open tasks and the dead letters the store counts.
 */
import type { QueuesView, StoreMethods } from "../contracts";
import type { Backends } from "../node/backends";
import { TASKS_READY_CHANNEL } from "../queue/wakeups";

export async function readQueues(backends: Pick<Backends, "queueDepth" | "queueLagSeconds">, store: Pick<StoreMethods, "countOpenWork">): Promise<QueuesView> {
  const [depth, lag, work] = await Promise.all([backends.queueDepth(), backends.queueLagSeconds(), store.countOpenWork()]);
  const { dead_letters, ...tasks } = work;
  return {
    at: new Date().toISOString(),
    queues: [{ channel: TASKS_READY_CHANNEL, waiting: depth.waiting, pending: depth.inFlight, lag_seconds: Math.round(lag * 1000) / 1000 }],
    tasks,
    dead_letters,
  };
}
