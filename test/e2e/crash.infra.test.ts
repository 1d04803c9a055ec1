/**
 * crash - infrastructure restarts (invariants 1–2). The cluster runs on its own
 * throwaway servers: redis-server keeping nothing on disk (a restart comes back
 * EMPTY: streams, consumer groups and leases gone), nats-server with JetStream in
 * a temp dir, and a temp Postgres cluster (initdb, run as user postgres). While a
 * stream of tasks runs, Redis, then NATS, then Postgres is hard-stopped for a few
 * seconds and started again. Tasks pause, then every accepted one completes with
 * the right decision and exactly one routing effect per routed task.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { orderIds } from "../../src/tools/orderRouter/data";
import {
  Cluster,
  natsServer,
  outcomeProblems,
  postgresServer,
  readCheckpoints,
  readTasks,
  redisServer,
  reexecutedSteps,
  simRequests,
  sleep,
  startSim,
  startStandardCluster,
  stopProc,
  submit,
  toolRuns,
  waitTerminal,
  type Proc,
  type Server,
} from "../helpers/crash";
import { hasService, uniqueId } from "../helpers/services";

const TASKS = 45;
const DOWN_MS = 3000;
const ready = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!ready)("crash - Redis, NATS and Postgres restarts under load", () => {
  const namespace = uniqueId("crashinfra");
  let redis: Server;
  let nats: Server;
  let postgres: Server;
  let sim: Proc & { url: string };
  let cluster: Cluster;
  let base: string;
  let pool: pg.Pool;

  beforeAll(async () => {
    [redis, nats, postgres] = await Promise.all([redisServer(), natsServer(), postgresServer()]);
    await Promise.all([redis.start(), nats.start(), postgres.start()]);
    sim = await startSim({ latencyMs: 150 });
    cluster = new Cluster({
      namespace,
      databaseUrl: postgres.url,
      redisUrl: redis.url,
      natsUrl: nats.url,
      simUrl: sim.url,
      env: {
        CLAWFLEET_LEASE_TTL_MS: "2000",
        CLAWFLEET_REAPER_INTERVAL_MS: "500",
        CLAWFLEET_REAPER_QUEUED_AFTER_MS: "2000",
        // Each outage may end the attempt of every task in flight; three outages must not dead-letter them.
        CLAWFLEET_MAX_ATTEMPTS: "20",
        CLAWFLEET_SHUTDOWN_GRACE_MS: "5000",
      },
    });
    base = await startStandardCluster(cluster, { planners: 2, executors: 1 });
    // The test's own reads tolerate the Postgres restart: a pool reconnects, a client would not.
    pool = new pg.Pool({ connectionString: postgres.url, max: 2, connectionTimeoutMillis: 2000 });
    pool.on("error", () => undefined);
  }, 180_000);

  afterAll(async () => {
    await pool?.end().catch(() => undefined);
    await cluster?.stopAll();
    if (sim) await stopProc(sim);
    await Promise.all([redis?.destroy(), nats?.destroy(), postgres?.destroy()]);
  }, 120_000);

  it("infra - Redis (empty after restart), then NATS, then Postgres restart mid-run: every accepted task completes, one routing effect each", async () => {
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
      ["redis", redis],
      ["nats", nats],
      ["postgres", postgres],
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

    const problems = await outcomeProblems(pool, submitted, tasks);
    const checkpoints = await readCheckpoints(pool, ids);
    const requests = (await simRequests(sim.url)).filter((r) => r.user_id !== null && submitted.has(r.user_id));
    const redone = reexecutedSteps(checkpoints, requests, toolRuns(cluster));
    process.stdout.write(`crash.infra: ${TASKS} tasks final after ${elapsed} ms; ${timeline.join("; ")}\n`);
    if (problems.length > 0 || redone.length > 0) {
      process.stdout.write(`${cluster.tails(25)}\n`);
      cluster.dump(namespace, { "problems.json": JSON.stringify({ problems, redone, timeline }, null, 2) });
    }

    expect(tasks.size).toBe(TASKS);
    expect(problems).toEqual([]);
    expect(redone).toEqual([]);
    // Every process rode out all three restarts: none died.
    expect(cluster.incarnations.filter((p) => !p.alive()).map((p) => `${p.nodeId}\n${p.output().slice(-3000)}`)).toEqual([]);
  }, 420_000);
});
