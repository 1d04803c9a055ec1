/**
 * What one Clawfleet process holds, created on first use and closed once: the
 * database pool (checkpoint and executor roles only), the Redis connection
 * (leases, queue statistics), the agent catalog. Embedded mode swaps in PGlite
 * and in-process implementations behind the same interfaces.
 */
import type { Redis } from "ioredis";
import type pg from "pg";
import { AgentCatalog } from "../agent/definition";
import type { Config } from "../config";
import { MemoryLeaseManager } from "../lease/memory";
import { RedisLeaseManager } from "../lease/redis";
import type { LeaseManager } from "../lease/types";
import { createRedis, type RedisLogger } from "../redis/connection";
import { openStore } from "../store/pgTaskStore";
import type { TaskStore } from "../store/types";
import { Health } from "./health";

export interface Database {
  store: TaskStore;
  pool: pg.Pool;
  kind: "postgres" | "pglite";
}

export class Resources {
  readonly agents: AgentCatalog;
  readonly health: Health;
  private db?: Promise<Database & { close(): Promise<void> }>;
  private redisClient?: Redis;
  private leaseManager?: LeaseManager;
  private readonly closers: Array<() => Promise<void>> = [];

  constructor(
    readonly config: Config,
    private readonly logger: RedisLogger,
  ) {
    this.agents = AgentCatalog.load(config.promptsDir);
    this.health = new Health(config.services, { maxLoopBlockMs: config.health.maxLoopBlockMs });
  }

  get embedded(): boolean {
    return this.config.mode === "embedded";
  }

  database(): Promise<Database> {
    if (!this.db) {
      const opened = openStore(
        this.config.databaseUrl !== undefined ? { databaseUrl: this.config.databaseUrl } : { dataDir: this.config.dataDir },
      );
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
      const client = createRedis(this.config.redisUrl, { name: `${this.config.namespace}-node`, logger: this.logger });
      this.redisClient = client;
      this.closers.push(async () => {
        await client.quit().catch(() => client.disconnect());
      });
    }
    return this.redisClient;
  }

  leases(): LeaseManager {
    if (!this.leaseManager) {
      this.leaseManager = this.embedded
        ? new MemoryLeaseManager()
        : new RedisLeaseManager(this.redis(), { prefix: this.config.namespace });
      const lm = this.leaseManager;
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
