/**
 * intake - a submit's 202 waits for its commit, not for its wake-up: the wake-up
 * is sent before the answer and goes on its way without it. Only when too many
 * are on their way at once (Redis slow or away) does a submit wait for its own,
 * and a stopping intake waits for those on their way, for a bounded time.
 */
import { describe, expect, it } from "vitest";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import type { WakeUp } from "../../src/contracts";
import { Intake } from "../../src/queue/intake";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { useMemoryStore } from "../helpers/memoryStore";

let store: PgTaskStore;
useMemoryStore((s) => (store = s));

const AGENT = parseAgentFile(["---", "name: echo", "tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 64}", "default_tier: main", "---", "Say it back."].join("\n"), "echo.md");

/** Wake-ups whose publish ends only when the test says so. */
function heldWakeUps(): { sent: WakeUp[]; release: () => void; publishCommitted: (w: WakeUp) => Promise<void> } {
  const sent: WakeUp[] = [];
  const pending: Array<() => void> = [];
  return {
    sent,
    release: () => pending.splice(0).forEach((r) => r()),
    publishCommitted: (w) => {
      sent.push(w);
      return new Promise<void>((resolve) => pending.push(resolve));
    },
  };
}

const settled = async (p: Promise<unknown>): Promise<boolean> => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 50))]);

describe("intake - the wake-up of a submit", () => {
  it("is sent before the answer, which does not wait for it", async () => {
    const wakeUps = heldWakeUps();
    const intake = new Intake({ store, agents: new AgentCatalog([AGENT]), wakeUps });
    const answer = await intake.submit({ agent: "echo", input: "hi" }, undefined);
    expect(wakeUps.sent).toEqual([expect.objectContaining({ taskId: answer.id, reason: "submitted" })]);
    // Committed before the answer, whatever became of the wake-up.
    expect((await store.getTask(answer.id))?.status).toBe("queued");
    wakeUps.release();
  });

  it("is waited for once too many are on their way", async () => {
    const wakeUps = heldWakeUps();
    const intake = new Intake({ store, agents: new AgentCatalog([AGENT]), wakeUps, maxDetachedWakeUps: 2 });
    await intake.submit({ agent: "echo", input: "1" }, undefined);
    await intake.submit({ agent: "echo", input: "2" }, undefined);
    const third = intake.submit({ agent: "echo", input: "3" }, undefined);
    expect(await settled(third)).toBe(false);
    expect(wakeUps.sent).toHaveLength(3);
    wakeUps.release();
    expect(await settled(third)).toBe(true);
    // The two on their way are done: the next submit does not wait.
    expect(await settled(intake.submit({ agent: "echo", input: "4" }, undefined))).toBe(true);
    wakeUps.release();
  });

  it("is waited for by a stopping intake, for as long as it is told at most", async () => {
    const wakeUps = heldWakeUps();
    const intake = new Intake({ store, agents: new AgentCatalog([AGENT]), wakeUps });
    expect(await settled(intake.wakeUpsSent(10_000))).toBe(true);
    await intake.submit({ agent: "echo", input: "hi" }, undefined);
    const sent = intake.wakeUpsSent(10_000);
    expect(await settled(sent)).toBe(false);
    wakeUps.release();
    expect(await settled(sent)).toBe(true);

    await intake.submit({ agent: "echo", input: "again" }, undefined);
    const started = Date.now();
    await intake.wakeUpsSent(100);
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
    wakeUps.release();
  });

  it("does not fail the committed submit when its publish fails, waited for or not", async () => {
    const failing = { publishCommitted: () => Promise.reject(new Error("redis away")) };
    for (const maxDetachedWakeUps of [1024, 0]) {
      const intake = new Intake({ store, agents: new AgentCatalog([AGENT]), wakeUps: failing, maxDetachedWakeUps });
      const answer = await intake.submit({ agent: "echo", input: "hi" }, undefined);
      expect(answer).toMatchObject({ created: true, status: "queued" });
      expect((await store.getTask(answer.id))?.status).toBe("queued");
      await intake.wakeUpsSent(1_000);
    }
  });
});
