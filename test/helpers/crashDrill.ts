/**
 * The set-up and tear-down every crash drill shares, as vitest hooks: a
 * `clawfleet sim`, the standard cluster (startStandardCluster) with the drill's
 * settings, and the test's own connection to the cluster's database. The
 * cluster runs on the shared test services (a fresh database and namespace) or,
 * for a drill that restarts them, on throwaway servers of its own.
 *
 * The returned object is filled in by `beforeAll`: read its fields inside tests.
 */
import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { Cluster, natsServer, postgresServer, redisServer, startSim, startStandardCluster, stopProc, type Proc, type Server, type StandardLayout } from "../../testkit/crash";
import { createScratch, NATS_TEST_URL, REDIS_TEST_URL, uniqueId, type Scratch } from "../../testkit/scratch";

export interface CrashDrillOptions {
  /** Prefix of the run's namespace. */
  name: string;
  /** The sim's latency per model call. */
  latencyMs: number;
  /** Lease, reaper, attempt and shutdown settings: environment of every node. */
  env: Record<string, string>;
  layout: StandardLayout;
  /** Run on a redis-server, nats-server and Postgres of the drill's own, which it may crash. */
  throwawayServers?: boolean;
}

export interface CrashDrill {
  namespace: string;
  sim: Proc & { url: string };
  cluster: Cluster;
  /** The api node's URL. */
  base: string;
  /** The test's own connection to the cluster's database. */
  client: pg.Client | pg.Pool;
}

export interface ThrowawayServers {
  redis: Server;
  nats: Server;
  postgres: Server;
}

export function useCrashDrill(opts: CrashDrillOptions & { throwawayServers: true }): CrashDrill & { servers: ThrowawayServers };
export function useCrashDrill(opts: CrashDrillOptions): CrashDrill;
export function useCrashDrill(opts: CrashDrillOptions): Partial<CrashDrill & { servers: ThrowawayServers }> {
  const drill: Partial<CrashDrill & { servers: ThrowawayServers }> = {};
  let scratch: Scratch | undefined;

  beforeAll(async () => {
    let where: { databaseUrl: string; redisUrl: string; natsUrl: string };
    if (opts.throwawayServers) {
      const [redis, nats, postgres] = await Promise.all([redisServer(), natsServer(), postgresServer()]);
      drill.servers = { redis, nats, postgres };
      await Promise.all([redis.start(), nats.start(), postgres.start()]);
      drill.namespace = uniqueId(opts.name);
      where = { databaseUrl: postgres.url, redisUrl: redis.url, natsUrl: nats.url };
    } else {
      scratch = await createScratch(opts.name);
      drill.namespace = scratch.namespace;
      where = { databaseUrl: scratch.db.url, redisUrl: REDIS_TEST_URL, natsUrl: NATS_TEST_URL };
    }
    const sim = (drill.sim = await startSim({ latencyMs: opts.latencyMs }));
    const cluster = (drill.cluster = new Cluster({ namespace: drill.namespace, ...where, simUrl: sim.url, env: opts.env }));
    drill.base = await startStandardCluster(cluster, opts.layout);
    if (opts.throwawayServers) {
      // The test's own reads must ride out a Postgres restart: a pool reconnects, a client would not.
      const pool = (drill.client = new pg.Pool({ connectionString: where.databaseUrl, max: 2, connectionTimeoutMillis: 2000 }));
      pool.on("error", () => undefined);
    } else {
      const client = (drill.client = new pg.Client({ connectionString: where.databaseUrl }));
      await client.connect();
    }
  }, 180_000);

  afterAll(async () => {
    await drill.client?.end().catch(() => undefined);
    await drill.cluster?.stopAll();
    if (drill.sim) await stopProc(drill.sim);
    await scratch?.remove();
    const servers = drill.servers;
    if (servers) await Promise.all([servers.redis.destroy(), servers.nats.destroy(), servers.postgres.destroy()]);
  }, 120_000);

  return drill;
}
