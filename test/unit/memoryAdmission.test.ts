/**
 * planner memory cap - over CLAWFLEET_PLANNER_MAX_RSS_MB a wake-up waits before it claims a task, and
 * goes on once memory is below the cap again (src/agent/admission.ts); one log line each way.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { MemoryAdmission } from "../../src/agent/admission";

function gateWith(rss: { now: number }, maxRssBytes = 1_000) {
  const lines: Array<{ event: unknown }> = [];
  const logger = { info: (o: { event: unknown }) => void lines.push(o), warn: (o: { event: unknown }) => void lines.push(o) };
  const gate = new MemoryAdmission({ maxRssBytes, logger, inFlight: () => 7, rss: () => rss.now, recheckMs: 5 });
  return { gate, events: () => lines.map((l) => l.event) };
}

async function settledWithin(p: Promise<void>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), sleep(ms).then(() => false)]);
}

describe("planner memory cap", () => {
  it("admits at once below the cap, logging nothing", async () => {
    const { gate, events } = gateWith({ now: 999 });
    expect(await settledWithin(gate.admit(), 20)).toBe(true);
    expect(gate.paused).toBe(false);
    expect(events()).toEqual([]);
  });

  it("above the cap, holds every wake-up until memory is below it again, with one line each way", async () => {
    const rss = { now: 1_500 };
    const { gate, events } = gateWith(rss);
    const first = gate.admit();
    const second = gate.admit();
    expect(await settledWithin(first, 40)).toBe(false);
    expect(gate.paused).toBe(true);
    rss.now = 900; // tasks in flight settled; memory fell
    expect(await settledWithin(Promise.all([first, second]).then(() => undefined), 200)).toBe(true);
    expect(gate.paused).toBe(false);
    expect(events()).toEqual(["planner.memory_paused", "planner.memory_resumed"]);
  });

  it("a shutdown lets the waiting wake-ups go (the worker then takes nothing), and later ones pass too", async () => {
    const { gate } = gateWith({ now: 5_000 });
    const waiting = gate.admit();
    gate.close();
    expect(await settledWithin(waiting, 50)).toBe(true);
    expect(await settledWithin(gate.admit(), 20)).toBe(true);
  });

  it("0 is no cap", async () => {
    const { gate } = gateWith({ now: Number.MAX_SAFE_INTEGER }, 0);
    expect(await settledWithin(gate.admit(), 20)).toBe(true);
  });
});
