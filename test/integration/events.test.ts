/**
 * events - a user's own Moleculer service (plain, no Clawfleet import) that
 * subscribes to `clawfleet.task.*` sees every task's lifecycle, each transition
 * exactly once: in one embedded node, and across a real NATS transporter where
 * the user's service runs as two instances on brokers of its own (events are
 * balanced per service, so together they see each event once) beside a second
 * subscribing service, which sees them all too.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { ServiceBroker, type Context, type ServiceSchema } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNode, type ClawfleetNode } from "../../app/node";
import { loadConfig } from "../../src/config";
import { TASK_EVENT_SCHEMAS, type TaskEventName } from "../../src/contracts";
import { cleanRedis, createTestDatabase, hasService, NATS_TEST_URL, REDIS_TEST_URL, uniqueId, type TestDatabase } from "../helpers/services";

interface Seen {
  service: string;
  node: string;
  name: string;
  payload: { task_id: string; step: number; status: string } & Record<string, unknown>;
}

/** What a user writes: a plain service listening to every task event. */
function auditService(name: string, seen: Seen[]): ServiceSchema {
  return {
    name,
    events: {
      "clawfleet.task.*": {
        handler(this: { broker: ServiceBroker }, ctx: Context<Seen["payload"]>) {
          seen.push({ service: name, node: this.broker.nodeID, name: ctx.eventName ?? "", payload: ctx.params });
        },
      },
    },
  };
}

/** Two agents without tools: one answers (succeeds); one is classified by a router, then is over its step budget (fails). */
function promptsDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "events-prompts-"));
  const tiers = ["tiers:", "  main: {model: claude-haiku-5-5, max_tokens: 256}"];
  fs.writeFileSync(path.join(dir, "echo.md"), ["---", "name: echo", ...tiers, "default_tier: main", "---", "Answer in one line."].join("\n"));
  fs.writeFileSync(
    path.join(dir, "short.md"),
    ["---", "name: short", ...tiers, "default_tier: main", "router: {classify_tier: main}", "budgets: {max_steps: 1}", "---", "Too short a budget."].join("\n"),
  );
  return dir;
}

const short = (name: string) => name.slice("clawfleet.task.".length);

/** The transitions each task went through, per subscribing service, as `event:step`. */
function lifecycles(seen: readonly Seen[], service: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const s of seen.filter((x) => x.service === service)) {
    const list = out.get(s.payload.task_id) ?? [];
    list.push(`${short(s.name)}:${s.payload.step}`);
    out.set(s.payload.task_id, list);
  }
  return out;
}

async function submitAll(node: ClawfleetNode, agents: readonly string[]): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (const agent of agents) {
    const r = await node.broker.call<{ id: string }, { body: unknown }>("intake.submit", { body: { agent, input: `a task for ${agent}` } });
    ids.set(r.id, agent);
  }
  return ids;
}

async function waitTerminal(seen: readonly Seen[], service: string, ids: Iterable<string>, timeoutMs = 30_000): Promise<void> {
  const want = [...ids];
  const deadline = Date.now() + timeoutMs;
  const terminal = () => new Set(seen.filter((s) => s.service === service && ["succeeded", "failed", "cancelled"].includes(s.payload.status)).map((s) => s.payload.task_id));
  while (want.some((id) => !terminal().has(id))) {
    if (Date.now() > deadline) throw new Error(`tasks not finished in ${timeoutMs} ms: ${JSON.stringify([...lifecycles(seen, service)])}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // Room for a late duplicate to show up, were there one.
  await new Promise((r) => setTimeout(r, 300));
}

const EXPECTED: Record<string, string[]> = {
  echo: ["queued:0", "started:0", "step:1", "succeeded:1"],
  short: ["queued:0", "started:0", "step:1", "failed:1"],
};

/** Where a transition sits in a lifecycle, to compare what several instances received in no particular order. */
const rank = (entry: string) => {
  const [event = "", step = "0"] = entry.split(":");
  return Number(step) * 10 + ["queued", "started", "step", "succeeded", "failed"].indexOf(event);
};

/**
 * `ordered`: one instance received everything, in the order sent. A service with several instances
 * gets each event once, on one of them; across instances, handling order is not guaranteed.
 */
function expectLifecycles(seen: readonly Seen[], service: string, ids: Map<string, string>, ordered = true): void {
  const got = lifecycles(seen, service);
  for (const [id, agent] of ids) {
    const list = got.get(id) ?? [];
    expect(ordered ? list : [...list].sort((a, b) => rank(a) - rank(b)), `${service} ${agent} ${id}`).toEqual(EXPECTED[agent]);
  }
  for (const s of seen) expect(() => (TASK_EVENT_SCHEMAS[s.name as TaskEventName] as { parse(v: unknown): unknown }).parse(s.payload)).not.toThrow();
}

describe("events - embedded node", () => {
  const dir = promptsDir();
  const seen: Seen[] = [];
  let node: ClawfleetNode;

  beforeAll(async () => {
    const config = loadConfig({ PORT: "0", CLAWFLEET_DATA_DIR: "memory://", CLAWFLEET_NAMESPACE: uniqueId("events"), CLAWFLEET_PROMPTS_DIR: dir, LOG_LEVEL: "error" });
    node = await startNode(config);
    node.broker.createService(auditService("audit", seen));
    await node.broker.waitForServices(["audit"]);
  }, 60_000);

  afterAll(async () => {
    await node?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("events - a user's service sees queued, started, each step and the end of every task, once each", async () => {
    const ids = await submitAll(node, ["echo", "short", "echo", "short", "echo"]);
    await waitTerminal(seen, "audit", ids.keys());
    expectLifecycles(seen, "audit", ids);
    const failed = seen.find((s) => s.name === "clawfleet.task.failed");
    expect(failed?.payload).toMatchObject({ agent: "short", error: { type: expect.any(String) } });
    const succeeded = seen.find((s) => s.name === "clawfleet.task.succeeded");
    expect((succeeded?.payload.usage as { output_tokens: number }).output_tokens).toBeGreaterThan(0);
  });
});

const distributed = hasService("nats") && hasService("redis") && hasService("postgres");

describe.skipIf(!distributed)("events - over NATS, the user's services on brokers of their own", () => {
  const dir = promptsDir();
  const seen: Seen[] = [];
  const namespace = uniqueId("events");
  const userBrokers: ServiceBroker[] = [];
  let db: TestDatabase;
  let node: ClawfleetNode;

  beforeAll(async () => {
    db = await createTestDatabase();
    for (const [nodeID, services] of [
      ["user-1", ["audit", "dashboard"]],
      ["user-2", ["audit"]],
    ] as const) {
      const broker = new ServiceBroker({ namespace, nodeID: `${nodeID}-${namespace}`, transporter: NATS_TEST_URL, logger: false });
      for (const s of services) broker.createService(auditService(s, seen));
      await broker.start();
      userBrokers.push(broker);
    }
    const config = loadConfig({
      PORT: "0",
      TRANSPORTER: NATS_TEST_URL,
      REDIS_URL: REDIS_TEST_URL,
      DATABASE_URL: db.url,
      CLAWFLEET_NAMESPACE: namespace,
      CLAWFLEET_PROMPTS_DIR: dir,
      LOG_LEVEL: "error",
    });
    node = await startNode(config);
    // The node emits to the subscribers it knows of: wait until it has heard of every instance.
    await node.broker.waitForServices(["audit", "dashboard"], 10_000);
    const deadline = Date.now() + 10_000;
    while (node.broker.registry.getServiceList({ onlyAvailable: true }).filter((s) => s.name === "audit").length < 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
  }, 90_000);

  afterAll(async () => {
    await node?.stop();
    await Promise.all(userBrokers.map((b) => b.stop()));
    await db?.drop();
    await cleanRedis(REDIS_TEST_URL, namespace);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("events - each subscribing service sees every transition once; a service's instances share the work", async () => {
    const ids = await submitAll(node, ["echo", "short", "echo", "echo", "short", "echo"]);
    await waitTerminal(seen, "audit", ids.keys());
    await waitTerminal(seen, "dashboard", ids.keys());
    expectLifecycles(seen, "audit", ids, false);
    expectLifecycles(seen, "dashboard", ids);
    // The audit service runs on both user brokers: the events went to one instance or the other, never both.
    const auditNodes = new Set(seen.filter((s) => s.service === "audit").map((s) => s.node));
    expect(auditNodes.size).toBe(2);
    expect(seen.filter((s) => s.service === "audit").every((s) => s.payload.node === node.broker.nodeID)).toBe(true);
  });

  it("events - Clawfleet's api is sent the task events only while it serves a stream", async () => {
    const user = userBrokers[0] as ServiceBroker;
    // The nodes the user's broker would send a step event to for Clawfleet's node: its api's subscription, if any.
    const toClawfleet = () => (user.registry.events.getAllEndpoints("clawfleet.task.step") as Array<{ id: string }>).filter((e) => e.id === node.broker.nodeID);
    const [id] = (await submitAll(node, ["echo"])).keys();
    // The user's broker has heard of Clawfleet's node and its api: what the api listens to would be listed by now.
    const knowsApi = () => (user.registry.getServiceList({ onlyAvailable: true }) as Array<{ name: string; nodeID: string }>).some((s) => s.name === "api" && s.nodeID === node.broker.nodeID);
    const known = Date.now() + 10_000;
    while (!knowsApi() && Date.now() < known) await new Promise((r) => setTimeout(r, 50));
    expect(knowsApi()).toBe(true);
    expect(toClawfleet()).toEqual([]);
    const stream = await node.broker.call<Readable, { params: { id: string | undefined } }>("api.taskEvents", { params: { id } }, { meta: { tenant: "default" } });
    try {
      const deadline = Date.now() + 10_000;
      while (toClawfleet().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(toClawfleet()).toHaveLength(1);
    } finally {
      stream.destroy();
    }
  });
});
