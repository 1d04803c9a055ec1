/**
 * crash - infrastructure restarts (invariants 1–2). The cluster runs on its own
 * throwaway servers: redis-server keeping nothing on disk (a restart comes back
 * EMPTY: streams, consumer groups and leases gone), nats-server with JetStream in
 * a temp dir, and a temp Postgres cluster (initdb, run as user postgres). While a
 * stream of tasks runs, Redis, then NATS, then Postgres is hard-stopped for a few
 * seconds and started again. Tasks pause, then every accepted one completes with
 * the right decision and exactly one routing effect per routed task.
 */
import { describe, expect, it } from "vitest";
import { orderIds } from "../../examples/order-router/lib/data";
import { drillEvidence, readTasks, sleep, submit, waitTerminal } from "../../testkit/crash";
import { useCrashDrill } from "../helpers/crashDrill";
import { hasService } from "../helpers/services";

const TASKS = 45;
const DOWN_MS = 3000;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - Redis, NATS and Postgres restarts under load", () => {
  const drill = useCrashDrill({
    name: "crashinfra",
    throwawayServers: true,
    latencyMs: 150,
    env: {
      CLAWFLEET_LEASE_TTL_MS: "2000",
      CLAWFLEET_REAPER_INTERVAL_MS: "500",
      CLAWFLEET_REAPER_QUEUED_AFTER_MS: "2000",
      // Each outage may end the attempt of every task in flight; three outages must not dead-letter them.
      CLAWFLEET_MAX_ATTEMPTS: "20",
      CLAWFLEET_SHUTDOWN_GRACE_MS: "5000",
    },
    layout: { planners: 2, executors: 1 },
  });

  it("infra - Redis (empty after restart), then NATS, then Postgres restart mid-run: every accepted task completes, one routing effect each", async () => {
    const { namespace, sim, cluster, base, client: pool, servers } = drill;
    const started = Date.now();
    const orders = orderIds().slice(500, 500 + TASKS);
    const submitted = new Map<string, string>();
    let submitError: Error | undefined;
    const submitting = (async () => {
      for (const order of orders) {
        submitted.set(await submit(base, { order_id: order }, 120_000), order);
        await sleep(600);
      }
    })().catch((err: unknown) => {
      submitError = err instanceof Error ? err : new Error(String(err));
    });

    const succeeded = async () => {
      try {
        return [...(await readTasks(pool, [...submitted.keys()])).values()].filter((t) => t.status === "succeeded").length;
      } catch {
        return -1;
      }
    };
    /** Waits until `n` more tasks have succeeded than before: the cluster makes progress again. */
    const progress = async (what: string, n: number) => {
      const from = await succeeded();
      const deadline = Date.now() + 90_000;
      while ((await succeeded()) < from + n) {
        if (submitError) throw submitError;
        if (Date.now() > deadline) throw new Error(`no progress after ${what}:\n${cluster.tails(20)}`);
        await sleep(250);
      }
      return Date.now();
    };

    const timeline: string[] = [];
    await progress("start-up", 3);
    for (const [name, server] of [
      ["redis", servers.redis],
      ["nats", servers.nats],
      ["postgres", servers.postgres],
    ] as const) {
      const down = Date.now();
      await server.crash();
      await sleep(DOWN_MS);
      await server.start();
      const up = Date.now();
      const resumed = await progress(`${name} restart`, 3);
      timeline.push(`${name}: down ${up - down} ms, tasks completing again ${resumed - up} ms after restart`);
    }

    await submitting;
    if (submitError) throw submitError;
    const ids = [...submitted.keys()];
    const tasks = await waitTerminal(pool, ids, 180_000);
    const elapsed = Date.now() - started;
    await sleep(500);

    const { problems, redone } = await drillEvidence(pool, sim.url, cluster, submitted, tasks);
    process.stdout.write(`crash.infra: ${TASKS} tasks final after ${elapsed} ms; ${timeline.join("; ")}\n`);
    if (problems.length > 0 || redone.length > 0) cluster.postMortem(namespace, 25, { problems, redone, timeline });

    expect(tasks.size).toBe(TASKS);
    expect(problems).toEqual([]);
    expect(redone).toEqual([]);
    // Every process rode out all three restarts: none died.
    expect(cluster.incarnations.filter((p) => !p.alive()).map((p) => `${p.nodeId}\n${p.output().slice(-3000)}`)).toEqual([]);
  }, 420_000);
});
