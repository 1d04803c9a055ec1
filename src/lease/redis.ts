/**
 * Leases shared by every planner of a cluster, in Redis: `SET NX PX` to acquire,
 * Lua compare-and-extend / compare-and-delete (src/lease/lua/) to renew and release.
 * A planner's heartbeat renews all its leases at once: one pipeline of the same
 * compare-and-extend, so one round trip, and each lease still checked on its own.
 */
import type { Redis } from "ioredis";
import { UnavailableError } from "../errors";
import { awaitRedis } from "../redis/connection";
import { RedisScripts, luaDir } from "../redis/scripts";
import { checkOwner, checkTtl } from "./checks";
import type { HeldLease, LeaseManager } from "./types";

/** A pipeline's entry point for a script defined on its connection (ioredis copies them onto every pipeline). */
type QueueRenew = (key: string, owner: string, ttlMs: number) => unknown;

export interface RedisLeaseManagerOptions {
  /** Namespaces the keys: `${prefix}:lease:${taskId}`. Usually the Moleculer namespace. */
  prefix: string;
  /**
   * Whether `close()` also closes the connection. Leave false when the connection
   * is shared (rate limiter, metrics) and closed by whoever opened it.
   * @default false
   */
  ownsConnection?: boolean;
}

export class RedisLeaseManager implements LeaseManager {
  private readonly prefix: string;
  private readonly ownsConnection: boolean;
  private readonly scripts: RedisScripts;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    opts: RedisLeaseManagerOptions,
  ) {
    if (opts.prefix === "") throw new RangeError("RedisLeaseManager needs a non-empty key prefix");
    this.prefix = opts.prefix;
    this.ownsConnection = opts.ownsConnection ?? false;
    this.scripts = RedisScripts.load(redis, luaDir("lease", "lua"));
  }

  /** The Redis key of a task's lease; exposed for tests and operators' tooling. */
  key(taskId: string): string {
    return `${this.prefix}:lease:${taskId}`;
  }

  async acquire(taskId: string, owner: string, ttlMs: number): Promise<boolean> {
    this.checkOpen();
    checkOwner(owner);
    checkTtl(ttlMs);
    const reply = await this.call("acquire", this.redis.set(this.key(taskId), owner, "PX", ttlMs, "NX"));
    return reply === "OK";
  }

  async renew(taskId: string, owner: string, ttlMs: number): Promise<boolean> {
    this.checkOpen();
    checkTtl(ttlMs);
    const reply = await this.call("renew", this.scripts.run("renewLease", [this.key(taskId)], [owner, ttlMs]));
    return reply === 1;
  }

  async renewMany(leases: readonly HeldLease[], ttlMs: number): Promise<boolean[]> {
    this.checkOpen();
    checkTtl(ttlMs);
    if (leases.length === 0) return [];
    const pipeline = this.redis.pipeline();
    const renew = (pipeline as unknown as Record<string, QueueRenew | undefined>)["renewLease"];
    if (!renew) throw new Error('Lua script "renewLease" is not defined on this connection');
    for (const l of leases) renew.call(pipeline, this.key(l.taskId), l.owner, ttlMs);
    const answers = pipeline.exec().then((replies) => {
      if (replies === null) throw new Error("lease renewMany: the pipeline was discarded");
      // Every entry fails alike when the connection does: one outage, reported (and wrapped) as for `renew`.
      return replies.map(([err, reply]) => {
        if (err) throw err;
        return reply === 1;
      });
    });
    return this.call("renewMany", answers);
  }

  async release(taskId: string, owner: string): Promise<boolean> {
    this.checkOpen();
    const reply = await this.call("release", this.scripts.run("releaseLease", [this.key(taskId)], [owner]));
    return reply === 1;
  }

  async held(taskIds: readonly string[]): Promise<boolean[]> {
    this.checkOpen();
    if (taskIds.length === 0) return [];
    // MGET, not a pipeline of EXISTS: one command, one reply, and an expired key reads as nil.
    const values = await this.call("held", this.redis.mget(taskIds.map((id) => this.key(id))));
    return values.map((v) => v !== null);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsConnection) {
      await this.redis.quit().catch(() => this.redis.disconnect());
    }
  }

  private call<T>(operation: string, pending: Promise<T>): Promise<T> {
    return awaitRedis("lease", operation, pending);
  }

  private checkOpen(): void {
    if (this.closed) throw new UnavailableError("lease manager is closed", { dependency: "redis" });
  }
}
