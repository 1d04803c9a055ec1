/**
 * task events - `clawfleet.task.*` as intake and the planner's task worker emit
 * them: one per committed transition. Real task worker, store (PGlite in
 * memory) and leases, a scripted model; the events are collected as a
 * subscriber would receive them and checked against their schemas.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AttemptEvents } from "../../src/agent/events";
import { AgentCatalog, parseAgentFile } from "../../src/agent/definition";
import type { AttemptInterceptor } from "../../src/agent/interceptors";
import { TaskWorker, type WorkerOptions } from "../../src/agent/taskWorker";
import { TASK_EVENT_SCHEMAS, type TaskEventName, type TaskEventPayload, type TaskEventSink } from "../../src/contracts";
import { ProviderRequestError, TaskNotFailedError, UnavailableError } from "../../src/errors";
import { MemoryLeaseManager } from "../../src/lease/memory";
import type { LeaseManager } from "../../src/lease/types";
import { PriceTable } from "../../src/llm/pricing";
import { ScriptedModel, text, toolUse, type ScriptedTurn } from "../../src/llm/scriptedModel";
import type { LlmClient } from "../../src/llm/client";
import { Intake } from "../../src/queue/intake";
import type { PgTaskStore } from "../../src/store/pgTaskStore";
import { ToolRegistry } from "../../src/tools/registry";
import { useMemoryStore } from "../helpers/memoryStore";

const AGENT = parseAgentFile(
  ["---", "name: shipper", "tools: [ship]", "tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 512}", "default_tier: main", "---", "You ship things."].join("\n"),
  "inline:shipper.md",
);
const shipTurn: ScriptedTurn = { content: [toolUse("tu_ship", "ship", { what: "box" })] };
const finalTurn: ScriptedTurn = { content: [text("shipped")] };

let store: PgTaskStore;
useMemoryStore((s) => (store = s), { failQueuedBeforeEach: true });


interface Received {
  name: TaskEventName;
  payload: TaskEventPayload;
}

/** A subscriber's view: every event, validated against its contract schema on arrival. */
function subscriber(): { sink: TaskEventSink; events: Received[]; of(id: string): Received[]; names(id: string): string[] } {
  const events: Received[] = [];
  const sink: TaskEventSink = (name, payload) => {
    (TASK_EVENT_SCHEMAS[name] as z.ZodType).parse(payload);
    events.push({ name, payload });
  };
  const of = (id: string) => events.filter((e) => e.payload.task_id === id);
  return { sink, events, of, names: (id) => of(id).map((e) => `${e.name.slice("clawfleet.task.".length)}:${e.payload.step}`) };
}

function shipTool(body: (nth: number) => Promise<void> = async () => undefined) {
  let n = 0;
  return new ToolRegistry().register({
    name: "ship",
    description: "ships",
    sideEffect: false,
    input: z.object({ what: z.string() }),
    run: async ({ what }) => {
      await body(++n);
      return { shipped: what };
    },
  });
}

/** These tests retry a task at once. */
const NO_BACKOFF = { baseMs: 0, maxMs: 0 };

function worker(s: { llm: LlmClient; registry: ToolRegistry; leases: LeaseManager; sink: TaskEventSink; owner?: string; opts?: Partial<WorkerOptions> }): TaskWorker {
  const events = new AttemptEvents(s.sink, s.owner ?? "planner-a");
  const steps: AttemptInterceptor = { name: "events", stepCheckpointed: (e) => events.step(e) };
  return new TaskWorker(
    {
      store,
      leases: s.leases,
      agents: new AgentCatalog([AGENT]),
      llm: s.llm,
      tools: s.registry,
      toolSpecs: async (agent) => s.registry.specs(agent.tools),
      prices: new PriceTable(),
      logger: { info: () => undefined, warn: () => undefined },
      retry: { baseDelayMs: 1, maxDelayMs: 5, maxProviderRetries: 1, maxRateLimitWaitMs: 1_000 },
      interceptors: [steps],
    },
    { owner: s.owner ?? "planner-a", leaseTtlMs: 5_000, leaseRenewMs: 60_000, maxAttempts: 3, defaultMaxSteps: 20, now: () => 0, retryBackoff: NO_BACKOFF, ...s.opts },
    { onClaimed: (t) => events.claimed(t), onStarted: (id) => events.started(id), onSettled: (id, o, d) => events.settled(id, o, d) },
  );
}

function intake(sink: TaskEventSink): Intake {
  return new Intake({ store, agents: new AgentCatalog([AGENT]), wakeUps: { publishCommitted: async () => undefined }, events: { sink, node: "api-1" } });
}

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

describe("task events - one per transition", () => {
  it("events - a task's lifecycle: queued, started, one step per checkpoint, succeeded; usage adds up to the task's", async () => {
    const sub = subscriber();
    const { id } = await intake(sub.sink).submit({ agent: "shipper", input: "ship a box", priority: "high" }, undefined);
    expect(await worker({ llm: new ScriptedModel([shipTurn, finalTurn]), registry: shipTool(), leases: new MemoryLeaseManager(), sink: sub.sink }).handle(id)).toBe("succeeded");

    expect(sub.names(id)).toEqual(["queued:0", "started:0", "step:1", "step:2", "step:3", "succeeded:3"]);
    const [queued, started, llm, tool, , succeeded] = sub.of(id).map((e) => e.payload);
    expect(queued).toMatchObject({ status: "queued", reason: "submitted", priority: "high", agent: "shipper", node: "api-1", usage: { input_tokens: 0 } });
    expect(started).toMatchObject({ status: "running", attempt: 1, resumed_at_step: 1, node: "planner-a" });
    expect(llm).toMatchObject({ kind: "llm", model: "claude-haiku-5-5", step_usage: { input_tokens: expect.any(Number) } });
    expect(tool).toMatchObject({ kind: "tool", tool: "ship", ok: true });
    const task = await store.getTask(id);
    expect(succeeded).toMatchObject({ status: "succeeded", prompt_version: task?.prompt_version, usage: task?.usage });
    expect(task?.usage.input_tokens).toBeGreaterThan(0);
  });

  it("events - a replayed Idempotency-Key is no transition: one queued event", async () => {
    const sub = subscriber();
    const key = `k-${randomUUID()}`;
    const a = await intake(sub.sink).submit({ agent: "shipper", input: "x" }, key);
    const b = await intake(sub.sink).submit({ agent: "shipper", input: "x" }, key);
    expect(b.id).toBe(a.id);
    expect(sub.names(a.id)).toEqual(["queued:0"]);
  });

  it("events - a task handed back on shutdown emits nothing for the hand-back; the resuming attempt emits started again at the next step", async () => {
    const sub = subscriber();
    const { id } = await intake(sub.sink).submit({ agent: "shipper", input: "x" }, undefined);
    const inTool = gate();
    const release = gate();
    const registry = shipTool(async (nth) => {
      if (nth > 1) return;
      inTool.open();
      await release.wait;
    });
    const leases = new MemoryLeaseManager();
    const first = worker({ llm: new ScriptedModel([shipTurn, finalTurn]), registry, leases, sink: sub.sink });
    const running = first.handle(id);
    await inTool.wait;
    first.stop(new Error("SIGTERM"));
    release.open();
    expect(await running).toBe("released");

    expect(await worker({ llm: new ScriptedModel([finalTurn]), registry, leases, sink: sub.sink, owner: "planner-b" }).handle(id)).toBe("succeeded");
    expect(sub.names(id)).toEqual(["queued:0", "started:0", "step:1", "step:2", "started:2", "step:3", "succeeded:3"]);
    const starts = sub.of(id).filter((e) => e.name === "clawfleet.task.started").map((e) => e.payload);
    expect(starts).toMatchObject([{ resumed_at_step: 1, node: "planner-a" }, { resumed_at_step: 3, node: "planner-b" }]);
    // The resumed attempt starts from the usage the first one left.
    expect(starts[1]?.usage.input_tokens).toBeGreaterThan(0);
  });

  it("events - a zombie's refused checkpoint and its abandoned attempt emit nothing; every step is announced once", async () => {
    const sub = subscriber();
    const { id } = await intake(sub.sink).submit({ agent: "shipper", input: "x" }, undefined);
    let now = 0;
    const leases = new MemoryLeaseManager({ now: () => now });
    const zombieInTool = gate();
    const zombieResume = gate();
    const registry = shipTool(async (nth) => {
      if (nth > 1) return;
      zombieInTool.open();
      await zombieResume.wait;
    });
    const zombie = worker({ llm: new ScriptedModel([shipTurn, finalTurn]), registry, leases, sink: sub.sink, opts: { leaseTtlMs: 1_000 } });
    const successor = worker({ llm: new ScriptedModel([finalTurn]), registry, leases, sink: sub.sink, owner: "planner-b", opts: { leaseTtlMs: 1_000 } });
    const zombieRun = zombie.handle(id);
    await zombieInTool.wait;
    now += 5_000;
    expect(await successor.handle(id)).toBe("succeeded");
    zombieResume.open();
    expect(await zombieRun).toBe("abandoned");

    // The successor re-ran the tool step (same key) and checkpointed it; the zombie's late write was refused.
    expect(sub.names(id)).toEqual(["queued:0", "started:0", "step:1", "started:1", "step:2", "step:3", "succeeded:3"]);
    expect(sub.of(id).filter((e) => e.name === "clawfleet.task.step").map((e) => e.payload.node)).toEqual(["planner-a", "planner-b", "planner-b"]);
  });

  it("events - passing failures hand the task back silently; the terminal failure is announced once, with its error", async () => {
    const sub = subscriber();
    const { id } = await intake(sub.sink).submit({ agent: "shipper", input: "x" }, undefined);
    const registry = shipTool(async () => {
      throw new UnavailableError("shipping backend unreachable");
    });
    const w = worker({ llm: new ScriptedModel([shipTurn]), registry, leases: new MemoryLeaseManager(), sink: sub.sink, opts: { maxAttempts: 2 } });
    expect(await w.handle(id)).toBe("released");
    expect(await w.handle(id)).toBe("released");
    expect(await w.handle(id)).toBe("failed");
    expect(await w.handle(id)).toBe("ignored_terminal");
    // The third claim is over the attempt budget: the task fails without starting.
    expect(sub.names(id)).toEqual(["queued:0", "started:0", "step:1", "started:1", "failed:1"]);
    expect(sub.of(id).at(-1)?.payload).toMatchObject({ status: "failed", error: { type: "attempts_exhausted" } });

    const sub2 = subscriber();
    const other = await intake(sub2.sink).submit({ agent: "shipper", input: "y" }, undefined);
    const model = new ScriptedModel([new ProviderRequestError("prompt is too long")]);
    expect(await worker({ llm: model, registry, leases: new MemoryLeaseManager(), sink: sub2.sink }).handle(other.id)).toBe("failed");
    expect(sub2.names(other.id)).toEqual(["queued:0", "started:0", "failed:0"]);
    expect(sub2.of(other.id).at(-1)?.payload).toMatchObject({ error: { type: "provider_request_error", message: "prompt is too long" } });
  });

  it("events - a redrive puts a failed task back: queued again, with the usage it had", async () => {
    const sub = subscriber();
    const { id } = await intake(sub.sink).submit({ agent: "shipper", input: "x" }, undefined);
    const model = new ScriptedModel([new ProviderRequestError("bad request")]);
    expect(await worker({ llm: model, registry: shipTool(), leases: new MemoryLeaseManager(), sink: sub.sink }).handle(id)).toBe("failed");
    expect(await intake(sub.sink).redrive(id)).toEqual({ taskId: id, redriven: true });
    // A second redrive finds the task queued, not failed: refused (409), and no second `queued` event.
    await expect(intake(sub.sink).redrive(id)).rejects.toBeInstanceOf(TaskNotFailedError);
    expect(sub.names(id)).toEqual(["queued:0", "started:0", "failed:0", "queued:0"]);
    expect(sub.of(id).at(-1)?.payload).toMatchObject({ reason: "redrive", status: "queued" });
  });
});
