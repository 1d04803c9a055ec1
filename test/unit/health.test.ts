/**
 * health - the planner's consume watchdog (stalled = work in flight and no progress for longer
 * than the limit) and the event-loop monitor behind /health/live.
 */
import { describe, expect, it } from "vitest";
import { LoopMonitor } from "../../src/health/eventLoop";
import { Health } from "../../src/health/health";
import { subscriptionState } from "../../src/queue/subscription";
import { ConsumeWatchdog, type SubscriptionState } from "../../src/health/watchdog";

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function busyWait(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // the point is to block the event loop
  }
}

describe("health - consume watchdog", () => {
  const subscribed = (): SubscriptionState => ({ active: true });

  it("is ready when subscribed and idle, however long nothing arrives", () => {
    const c = clock();
    const w = new ConsumeWatchdog({ stallAfterMs: 1000, subscription: subscribed, now: c.now });
    c.advance(60_000);
    expect(w.check()).toEqual({ ok: true });
  });

  it("reports a stall when handlers are in flight and nothing progressed for longer than the limit", () => {
    const c = clock();
    const w = new ConsumeWatchdog({ stallAfterMs: 1000, subscription: subscribed, now: c.now });
    w.begin();
    c.advance(1000);
    expect(w.check().ok).toBe(true);
    c.advance(1);
    const r = w.check();
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/^stalled: 1 task\(s\) in flight and no progress for 1 s \(limit 1 s\)$/);
  });

  it("counts a checkpointed step or another handler finishing as progress", () => {
    const c = clock();
    const w = new ConsumeWatchdog({ stallAfterMs: 1000, subscription: subscribed, now: c.now });
    w.begin();
    w.begin();
    c.advance(900);
    w.progress();
    c.advance(900);
    expect(w.check().ok).toBe(true);
    w.end();
    c.advance(900);
    expect(w.check().ok).toBe(true);
    c.advance(200);
    expect(w.check().ok).toBe(false);
    w.end();
    expect(w.check().ok).toBe(true);
    expect(w.activeHandlers).toBe(0);
  });

  it("is not ready while the subscription is down, saying why", () => {
    let sub: SubscriptionState = { active: false, detail: "redis connection reconnecting" };
    const w = new ConsumeWatchdog({ stallAfterMs: 1000, subscription: () => sub });
    expect(w.check()).toEqual({ ok: false, reason: "consume loop not subscribed: redis connection reconnecting" });
    sub = { active: true };
    expect(w.check().ok).toBe(true);
  });

  it("is not ready once draining for shutdown", () => {
    const w = new ConsumeWatchdog({ stallAfterMs: 1000, subscription: subscribed });
    w.drain();
    expect(w.check()).toEqual({ ok: false, reason: "draining: stopped taking work for shutdown" });
  });

  it("logs a stall once when it begins and once when it ends", async () => {
    const events: string[] = [];
    const w = new ConsumeWatchdog({
      stallAfterMs: 100,
      subscription: subscribed,
      onStall: () => events.push("stall"),
      onRecover: () => events.push("recover"),
    });
    w.start(20);
    w.begin();
    await new Promise((r) => setTimeout(r, 250));
    w.end();
    await new Promise((r) => setTimeout(r, 60));
    w.stop();
    expect(events).toEqual(["stall", "recover"]);
  });
});

describe("health - channel subscription state", () => {
  const id = "ns.node-1.planner.ns.tasks.ready";

  it("is active when the adapter is connected and the consumer is registered", () => {
    expect(subscriptionState({ connected: true, activeMessages: new Map([[id, []]]) }, id)).toEqual({ active: true });
  });

  it("is inactive with a reason when the adapter, the consumer or its Redis client is not up", () => {
    expect(subscriptionState(undefined, id).detail).toBe("no channel adapter on this broker");
    expect(subscriptionState({ connected: false, activeMessages: new Map() }, id).detail).toBe("channel adapter not connected");
    expect(subscriptionState({ connected: true, activeMessages: new Map() }, id).detail).toBe(`no consumer ${id}`);
    const redis = { connected: true, activeMessages: new Map([[id, []]]), clients: new Map([[id, { status: "reconnecting" }]]) };
    expect(subscriptionState(redis, id)).toEqual({ active: false, detail: "redis connection reconnecting" });
  });
});

describe("health - event-loop liveness", () => {
  it("fails after the loop was blocked longer than the limit, and recovers once the window has passed", async () => {
    const m = new LoopMonitor({ maxBlockMs: 150, windowMs: 400, sampleMs: 50 });
    try {
      await new Promise((r) => setTimeout(r, 120));
      expect(m.state().ok).toBe(true);
      busyWait(400);
      await new Promise((r) => setTimeout(r, 30));
      const blocked = m.state();
      expect(blocked.ok).toBe(false);
      expect(blocked.maxDelayMs).toBeGreaterThanOrEqual(300);
      await new Promise((r) => setTimeout(r, 700));
      expect(m.state().ok).toBe(true);
    } finally {
      m.close();
    }
  });

  it("does not count blocks before the node has started", async () => {
    const h = new Health(["planner"], { maxLoopBlockMs: 100, loopWindowMs: 5_000 });
    try {
      busyWait(300);
      await new Promise((r) => setTimeout(r, 30));
      expect(h.live()).toMatchObject({ status: "ok", starting: true });
      h.markStarted();
      expect(h.live()).toMatchObject({ status: "ok", starting: false });
    } finally {
      h.close();
    }
  });

  it("reports the block in /health/live's body", async () => {
    const h = new Health(["planner"], { maxLoopBlockMs: 100, loopWindowMs: 5_000 });
    try {
      h.markStarted();
      expect(h.live().status).toBe("ok");
      busyWait(300);
      await new Promise((r) => setTimeout(r, 30));
      const live = h.live();
      expect(live.status).toBe("failing");
      expect(live.reason).toMatch(/^event loop blocked for \d+ ms within the last 5 s \(limit 100 ms\)$/);
      expect(live.event_loop.threshold_ms).toBe(100);
    } finally {
      h.close();
    }
  });
});
