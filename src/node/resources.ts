/**
 * What one Clawfleet process holds, created on first use and closed once: the
 * backends of its mode (backends.ts), the database (checkpoint, executor and
 * intake roles only), the Redis connection (leases, buckets, queue statistics), the
 * agent catalog and the process's health.
 *
 * It exists before the broker (the broker is built with its channels
 * middleware), so the broker's logger is handed over with `useLogger`.
 */
import type { Redis } from "ioredis";
import type pg from "pg";
import { AgentCatalog } from "../agent/definition";
import type { Config } from "../config";
import type { LeaseManager } from "../lease/types";
import { createRedis, stderrRedisLogger, type RedisLogger } from "../redis/connection";
import type { TaskStore } from "../store/types";
import { backendsFor, type Backends } from "./backends";
import { Health } from "../health/health";
import { messageOf } from "../errors";

export interface Database {
  store: TaskStore;
  pool: pg.Pool;
  kind: "postgres" | "pglite";
}


export class Resources {
  readonly agents: AgentCatalog;
  readonly health: Health;
  readonly backends: Backends;
  // Until the broker's logger is handed over (nothing is opened before then, but no line is lost either).
  private logger: RedisLogger = stderrRedisLogger;
  private db?: Promise<Database & { close(): Promise<void> }>;
  private redisClient?: Redis;
  private leaseManager?: LeaseManager;
  private readonly closers: Array<() => Promise<void>> = [];

  /** `agents`: the node's catalog (every prompts folder and the agents defined in code). @default the agent files of `config.promptsDir` */
  constructor(
    readonly config: Config,
    agents?: AgentCatalog,
  ) {
    this.agents = agents ?? AgentCatalog.load(config.promptsDir);
    this.health = new Health(config.services, { maxLoopBlockMs: config.health.maxLoopBlockMs });
    this.backends = backendsFor(config, () => this.redis());
  }

  /** Where the Redis connection and failed closes report from now on. */
  useLogger(logger: RedisLogger): void {
    this.logger = logger;
  }

  database(): Promise<Database> {
    if (!this.db) {
      const opened = this.backends.openStore({
        onBatchFailed: (err, items) => this.logger.warn(`a batch of ${items} checkpoints failed as a whole and went one by one: ${messageOf(err)}`),
      });
      this.db = opened;
      this.closers.push(async () => (await opened).close());
      // A failed open must be retried by the next caller, not cached.
      opened.catch(() => {
        if (this.db === opened) this.db = undefined;
      });
    }
    return this.db;
  }

  redis(): Redis {
    if (this.config.redisUrl === undefined) throw new Error("Redis is not configured in embedded mode");
    if (!this.redisClient) {
      const logger: RedisLogger = { info: (m) => this.logger.info(m), warn: (m) => this.logger.warn(m) };
      const client = createRedis(this.config.redisUrl, { name: `${this.config.namespace}-node`, logger });
      this.redisClient = client;
      this.closers.push(async () => {
        await client.quit().catch(() => client.disconnect());
      });
    }
    return this.redisClient;
  }

  /** The process's one lease manager. */
  leases(): LeaseManager {
    if (!this.leaseManager) {
      const lm = this.backends.createLeases();
      this.leaseManager = lm;
      this.closers.unshift(() => lm.close());
    }
    return this.leaseManager;
  }

  async close(): Promise<void> {
    this.health.close();
    const closers = this.closers.splice(0);
    for (const close of closers) {
      try {
        await close();
      } catch (err) {
        this.logger.warn(`closing a resource failed: ${(err as Error).message}`);
      }
    }
  }
}
