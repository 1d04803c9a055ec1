/**
 * lease renewal - one heartbeat for all of a planner's leases (src/lease/renewer.ts): every held lease
 * renewed in one `renewMany` per period, each holder told its own lease's fate, and a task worker with
 * many tasks in flight renewing them all in one call while a lost lease still aborts only its task.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { MemoryLeaseManager } from "../../src/lease/memory";
import { LeaseRenewer, type RenewalListener } from "../../src/lease/renewer";
import type { HeldLease, LeaseManager } from "../../src/lease/types";

/** A real in-process manager whose `renewMany` calls are recorded (and may be held up or fail). */
class RecordingLeases extends MemoryLeaseManager {
  readonly batches: number[] = [];
  renews = 0;
  hold: Promise<void> = Promise.resolve();
  fail: Error | undefined;

  override async renew(taskId: string, owner: string, ttlMs: number): Promise<boolean> {
    this.renews++;
    return super.renew(taskId, owner, ttlMs);
  }

  override async renewMany(leases: readonly HeldLease[], ttlMs: number): Promise<boolean[]> {
    this.batches.push(leases.length);
    await this.hold;
    if (this.fail) throw this.fail;
    return super.renewMany(leases, ttlMs);
  }
}

interface Heard {
  untils: number[];
  losses: number;
}

function listener(): RenewalListener & Heard {
  const heard: Heard = { untils: [], losses: 0 };
  return Object.assign(heard, {
    renewed: (until: number) => void heard.untils.push(until),
    lost: () => void heard.losses++,
  });
}

const quiet = { warn: () => {} };

describe("lease renewal - the planner's one heartbeat", () => {
  it("renews every held lease in one renewMany call per period, never lease by lease", async () => {
    const leases = new RecordingLeases();
    const renewer = new LeaseRenewer({ leases, logger: quiet, ttlMs: 1_000, renewMs: 20, now: () => 0 });
    const heard = [];
    for (let i = 0; i < 500; i++) {
      const lease = { taskId: `t${i}`, owner: `o${i}` };
      expect(await leases.acquire(lease.taskId, lease.owner, 1_000)).toBe(true);
      const l = listener();
      heard.push(l);
      renewer.hold(lease, l);
    }
    await sleep(110);
    expect(leases.batches.length).toBeGreaterThanOrEqual(2);
    expect(new Set(leases.batches)).toEqual(new Set([500]));
    expect(leases.renews).toBe(0);
    // Each holder hears of each heartbeat, with the deadline the renewal gives it: a TTL after it was sent.
    expect(heard.every((l) => l.untils.length === leases.batches.length && l.untils.every((u) => u === 1_000))).toBe(true);
  });

  it("a lease taken over is reported lost to its own holder only, once, and renewed no more", async () => {
    let now = 0;
    const leases = new RecordingLeases({ now: () => now });
    const renewer = new LeaseRenewer({ leases, logger: quiet, ttlMs: 1_000, renewMs: 10_000, now: () => now });
    const kept = { taskId: "kept", owner: "a" };
    const taken = { taskId: "taken", owner: "a" };
    await leases.acquire(kept.taskId, kept.owner, 1_000);
    await leases.acquire(taken.taskId, taken.owner, 1_000);
    const keptHeard = listener();
    const takenHeard = listener();
    renewer.hold(kept, keptHeard);
    renewer.hold(taken, takenHeard);

    renewer.beat();
    await sleep(0);
    now = 900;
    renewer.beat();
    await sleep(0);
    expect(keptHeard.untils).toEqual([1_000, 1_900]);
    // Another planner has the task now (its lease lapsed while this process stood still, say).
    now = 1_000;
    await leases.release(taken.taskId, taken.owner);
    expect(await leases.acquire(taken.taskId, "b", 1_000)).toBe(true);
    renewer.beat();
    await sleep(0);
    renewer.beat();
    await sleep(0);

    expect(takenHeard.losses).toBe(1);
    expect(keptHeard.losses).toBe(0);
    expect(renewer.size).toBe(1);
    expect(leases.batches).toEqual([2, 2, 2, 1]);
    expect(keptHeard.untils).toEqual([1_000, 1_900, 2_000, 2_000]);
    // The new holder's lease was not extended by the old owner's renewal.
    expect(await leases.renew(taken.taskId, "b", 1_000)).toBe(true);
  });

  it("an outage logs one line per heartbeat, moves no deadline and loses no lease; a slow round trip is not piled on", async () => {
    const leases = new RecordingLeases();
    const warned: unknown[] = [];
    const renewer = new LeaseRenewer({ leases, logger: { warn: (o: unknown) => void warned.push(o) }, ttlMs: 1_000, renewMs: 10_000, now: () => 0 });
    const heard = [listener(), listener(), listener()];
    heard.forEach((l, i) => renewer.hold({ taskId: `t${i}`, owner: "a" }, l));

    let answer = () => {};
    leases.hold = new Promise((r) => (answer = r));
    leases.fail = new Error("ECONNREFUSED");
    renewer.beat();
    renewer.beat();
    renewer.beat();
    expect(leases.batches).toEqual([3]);
    answer();
    await sleep(0);

    expect(warned).toEqual([expect.objectContaining({ event: "lease.renew_failed", leases: 3 })]);
    expect(heard.every((l) => l.untils.length === 0 && l.losses === 0)).toBe(true);
    expect(renewer.size).toBe(3);
    renewer.beat();
    expect(leases.batches).toEqual([3, 3]);
  });

  it("an answer for a lease dropped while its round trip was out is not delivered", async () => {
    const leases = new RecordingLeases();
    const renewer = new LeaseRenewer({ leases, logger: quiet, ttlMs: 1_000, renewMs: 10_000, now: () => 0 });
    const heard = listener();
    const unhold = renewer.hold({ taskId: "t", owner: "a" }, heard);
    let answer = () => {};
    leases.hold = new Promise((r) => (answer = r));
    renewer.beat();
    unhold();
    answer();
    await sleep(0);
    // Never acquired, so "lost" would be the answer: the attempt that released it must not hear of it.
    expect(heard.losses).toBe(0);
    expect(renewer.size).toBe(0);
  });

  it("renewMany answers as renew would, lease by lease, including two owners' attempts at one task", async () => {
    let now = 0;
    const leases: LeaseManager = new MemoryLeaseManager({ now: () => now });
    await leases.acquire("mine", "a", 1_000);
    await leases.acquire("theirs", "b", 1_000);
    await leases.acquire("lapsing", "a", 100);
    now = 500;
    expect(await leases.renewMany([{ taskId: "mine", owner: "a" }, { taskId: "theirs", owner: "a" }, { taskId: "lapsing", owner: "a" }, { taskId: "never", owner: "a" }], 1_000)).toEqual([true, false, false, false]);
    now = 1_400; // past the first TTL, inside the renewed one
    expect(await leases.held(["mine", "theirs"])).toEqual([true, false]);
    await expect(leases.renewMany([], 0)).rejects.toBeInstanceOf(RangeError);
  });
});
