/**
 * Leases shared by every planner of a cluster, in Redis: `SET NX PX` to acquire,
 * Lua compare-and-extend / compare-and-delete (src/lease/lua/) to renew and release.
 * A planner's heartbeat renews all its leases at once: one script call per
 * thousand leases (renewLeases), the same compare-and-extend for each in turn, so
 * one round trip and one command where there were as many as leases, and each
 * lease still checked on its own. Its keys are many tasks' leases: one Redis, not
 * a cluster, whose slots would split them.
 */
import type { Redis } from "ioredis";
import { UnavailableError } from "../errors";
import { awaitRedis } from "../redis/connection";
import { RedisScripts, luaDir } from "../redis/scripts";
import { checkOwner, checkTtl } from "./checks";
import type { HeldLease, LeaseManager } from "./types";

/**
 * Leases renewed by one script call. Redis runs a script alone, so a planner with more leases than this sends
 * several calls (in the same round trip), and other clients wait for no more than one of them: about a
 * millisecond for a thousand (1.13–1.15 ms of the server's time in two runs: BENCHMARKS.md).
 */
export const RENEW_BATCH = 1_000;

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
    // The heartbeat's script, for one lease.
    const reply = await this.call("renew", this.scripts.run("renewLeases", [this.key(taskId)], [ttlMs, owner]));
    return Array.isArray(reply) && reply[0] === 1;
  }

  async renewMany(leases: readonly HeldLease[], ttlMs: number): Promise<boolean[]> {
    this.checkOpen();
    checkTtl(ttlMs);
    if (leases.length === 0) return [];
    const batches: Promise<unknown>[] = [];
    for (let at = 0; at < leases.length; at += RENEW_BATCH) {
      const batch = leases.slice(at, at + RENEW_BATCH);
      batches.push(
        this.scripts.run(
          "renewLeases",
          batch.map((l) => this.key(l.taskId)),
          [ttlMs, ...batch.map((l) => l.owner)],
        ),
      );
    }
    // A batch that fails fails the whole heartbeat: one outage, reported (and wrapped) as for `renew`.
    const answers = Promise.all(batches).then((replies) =>
      replies.flatMap((reply, i) => {
        const expected = Math.min(RENEW_BATCH, leases.length - i * RENEW_BATCH);
        if (!Array.isArray(reply) || reply.length !== expected) throw new Error(`renewLeases answered ${JSON.stringify(reply)?.slice(0, 80)} for ${expected} leases`);
        return reply.map((r) => r === 1);
      }),
    );
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
