/**
 * Where embedded and distributed mode part ways, decided once from the config:
 * the queue that carries wake-ups (in process, or Redis Streams) with its depth
 * and lag, the leases, the rate-limit buckets, and the task database (PGlite, or
 * Postgres). Everything above these runs the same code in both modes.
 */
import type { Redis } from "ioredis";
import type { Middleware } from "moleculer";
import type { Config } from "../config";
import { ConfigError } from "../errors";
import { MemoryLeaseManager } from "../lease/memory";
import { RedisLeaseManager } from "../lease/redis";
import type { LeaseManager } from "../lease/types";
import { MemoryBuckets, RedisBuckets, type Buckets } from "../ratelimit";
import { channelsMiddleware, embeddedAdapter, queueStats, type QueueDepth } from "../queue/channels";
import { consumerLagSeconds } from "../queue/consumerLag";
import type { MemoryAdapter } from "../queue/memoryAdapter";
import { PLANNERS_GROUP, TASKS_READY_CHANNEL } from "../queue/wakeups";
import { openStore, type OpenedStore, type OpenStoreOptions } from "../store/pgTaskStore";

export type StoreHooks = Pick<OpenStoreOptions, "onBatchFailed">;

/** The store's options, from the configuration: Postgres and PGlite alike. */
const storeOptions = (config: Config): OpenStoreOptions => ({ preparedStatements: config.pgPreparedStatements, groupCommit: config.pgGroupCommit });

export interface Backends {
  readonly mode: Config["mode"];
  /** The @moleculer/channels middleware that carries wake-ups; the broker is built with it. */
  readonly channels: Middleware;
  /** Backlog of `tasks.ready`: the metrics gauge, and the reaper's "is the queue drained?". */
  queueDepth(): Promise<QueueDepth>;
  /** Age in seconds of the oldest wake-up no planner has taken yet (0 when none waits). */
  readonly queueLagSeconds: () => Promise<number>;
  /** A new lease manager; the caller closes it. */
  createLeases(): LeaseManager;
  /** New token buckets for a rate limiter. */
  createBuckets(): Buckets;
  /**
   * Opens the task database and applies pending migrations. `hooks.onBatchFailed`: told of a batch of
   * checkpoints that failed as a whole (src/store/checkpointBatch.ts), to log it.
   */
  openStore(hooks?: StoreHooks): Promise<OpenedStore>;
}

/** The backends of `config.mode`. `redis` is called only in distributed mode, and only when a backend needs it. */
export function backendsFor(config: Config, redis: () => Redis): Backends {
  return config.mode === "embedded" ? new EmbeddedBackends(config) : new DistributedBackends(config, redis);
}

/** One process: the in-process queue, leases and buckets; PGlite unless DATABASE_URL names a Postgres. */
class EmbeddedBackends implements Backends {
  readonly mode = "embedded";
  readonly channels: Middleware;
  readonly queueLagSeconds: () => Promise<number>;
  private readonly adapter: MemoryAdapter;

  constructor(private readonly config: Config) {
    this.adapter = embeddedAdapter();
    this.channels = channelsMiddleware({ mode: "embedded", adapter: this.adapter });
    this.queueLagSeconds = async () => this.adapter.lagSeconds(TASKS_READY_CHANNEL, PLANNERS_GROUP);
  }

  async queueDepth(): Promise<QueueDepth> {
    const { waiting, inFlight } = this.adapter.depth(TASKS_READY_CHANNEL, PLANNERS_GROUP);
    return { waiting, inFlight };
  }

  createLeases(): LeaseManager {
    return new MemoryLeaseManager();
  }

  createBuckets(): Buckets {
    return new MemoryBuckets();
  }

  openStore(hooks: StoreHooks = {}): Promise<OpenedStore> {
    const { databaseUrl, dataDir } = this.config;
    return openStore({ ...(databaseUrl !== undefined ? { databaseUrl } : { dataDir }), ...storeOptions(this.config), ...hooks });
  }
}

/** A cluster: Redis Streams, Redis leases and buckets (one truth for every process), Postgres. */
class DistributedBackends implements Backends {
  readonly mode = "distributed";
  readonly channels: Middleware;
  readonly queueLagSeconds: () => Promise<number>;
  private readonly databaseUrl: string;

  constructor(
    private readonly config: Config,
    private readonly redis: () => Redis,
  ) {
    // loadConfig refuses a distributed config without them; this keeps the types honest.
    if (config.redisUrl === undefined) throw new ConfigError("REDIS_URL", "a distributed node needs Redis");
    if (config.databaseUrl === undefined) throw new ConfigError("DATABASE_URL", "a distributed node needs Postgres");
    this.databaseUrl = config.databaseUrl;
    this.channels = channelsMiddleware({ mode: "distributed", redisUrl: config.redisUrl, namespace: config.namespace });
    this.queueLagSeconds = () => consumerLagSeconds(this.redis(), config.namespace, TASKS_READY_CHANNEL, PLANNERS_GROUP);
  }

  async queueDepth(): Promise<QueueDepth> {
    return queueStats(this.redis(), this.config.namespace, TASKS_READY_CHANNEL, PLANNERS_GROUP);
  }

  createLeases(): LeaseManager {
    return new RedisLeaseManager(this.redis(), { prefix: this.config.namespace });
  }

  createBuckets(): Buckets {
    return new RedisBuckets(this.redis(), { prefix: this.config.namespace });
  }

  openStore(hooks: StoreHooks = {}): Promise<OpenedStore> {
    return openStore({ databaseUrl: this.databaseUrl, ...storeOptions(this.config), ...hooks });
  }
}
