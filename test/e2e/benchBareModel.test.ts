/**
 * The throughput benchmark's second and third peers, bare+model and bare+SDK: the same bare pipeline, whose
 * gateway also sends each model turn to the simulated provider in its own process, over node:http or through
 * the official SDK. Their figures stand for "the provider's round trip, and nothing of Clawfleet's", so each
 * must really make that trip, once per model turn, and still end every task; the plain peer must make none.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startBare, type RunningLayout } from "../../bench/throughput/layouts";
import { submitBurst, waitFinished } from "../../bench/throughput/driver";
import type { SimStats } from "../../src/sim";

const PLAN = { modelTurns: 3, toolCalls: 2, storeCalls: 4, commits: 6, events: 5 };
const TASKS = 4;
// Longer than a start-up may take under load (layouts.ts waits up to 300 s), so a slow start fails in startBare, which
// stops what it started, rather than in the test's timeout with its processes left running.
const TIMEOUT_MS = 400_000;

async function providerStats(l: RunningLayout): Promise<SimStats> {
  if (!l.provider) throw new Error("no provider process");
  const res = await fetch(`http://127.0.0.1:${l.provider.port}/_sim/stats`);
  return (await res.json()) as SimStats;
}

describe("the bare pipeline's peer with the provider's round trip (embedded, no services)", () => {
  let running: RunningLayout | undefined;
  afterEach(async () => {
    await running?.stop();
    running = undefined;
  });

  it.each(["http", "sdk"] as const)("sends each model turn to the simulated provider through %s, and every task still ends", { timeout: TIMEOUT_MS }, async (client) => {
    running = await startBare("embedded", { slots: 2 }, PLAN, client);
    const sent = await submitBurst(running.base, TASKS, 2);
    const done = await waitFinished(running, sent.map((s) => s.id), 60_000, 100);
    expect(done.map((d) => d.status)).toEqual(Array(TASKS).fill("succeeded"));
    const stats = await providerStats(running);
    expect(stats.requests).toBe(TASKS * PLAN.modelTurns);
    expect(stats.responses_by_status).toEqual({ "200": TASKS * PLAN.modelTurns });
    // The provider sees the same request from either client: the node says which one it was given.
    expect(running.nodes.map((n) => n.output()).join("")).toContain(`through ${client}\n`);
  });

  it("the plain peer starts no provider", { timeout: TIMEOUT_MS }, async () => {
    running = await startBare("embedded", { slots: 2 }, PLAN);
    expect(running.provider).toBeUndefined();
    expect(running.nodes.map((n) => n.output()).join("")).not.toContain("bare gateway:");
    const sent = await submitBurst(running.base, 1, 1);
    const done = await waitFinished(running, sent.map((s) => s.id), 60_000, 100);
    expect(done.map((d) => d.status)).toEqual(["succeeded"]);
  });
});
