/**
 * taskStream deltas - an agent with `stream: true` has the text of its model turn sent live on
 * `GET /v1/tasks/{id}/events` as `delta` events, in real `clawfleet start` processes on the simulated model
 * behind the official SDK: several deltas before the step, their text the step's, none with an id, none
 * replayed by a reconnect; an agent without `stream` gets none. Embedded (one process), then distributed
 * (NATS, Redis, Postgres) so the deltas cross from the rate-gateway's process to the api's.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXECUTOR_ROLES, startNodeProcess, stopAll, submitTask, tempDir, type NodeProcess } from "../../testkit/cluster";
import { readSse, type SseFrame, type SseReadOptions } from "../../testkit/sse";
import { createScratch, hasService, type Scratch } from "../helpers/services";

const agentFile = (name: string, extra: string[]) =>
  ["---", `name: ${name}`, "description: Answers in one turn.", "tiers:", "  main: {model: claude-haiku-4-5, max_tokens: 1024}", "default_tier: main", ...extra, "---", "Answer in one turn."].join("\n");
const STREAMER = agentFile("streamer", ["stream: true"]);
const PLAIN = agentFile("plain", []);
/** Long enough for a dozen deltas, over which the model's latency is spread. */
const INPUT = "please summarise the state of the three warehouses in the north region, naming every dock that is closed today and every order that waits on one of them, then say which carrier is late";
const LATENCY_MS = "3000";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

interface Delta {
  task_id: string;
  step: number;
  index: number;
  block: number;
  text: string;
}

interface StepData {
  step: number;
  kind: string;
  content?: Array<{ type: string; text?: string }>;
}

/** The task's events until the terminal one (or until `onFrame` answers false). */
async function follow(base: string, taskId: string, opts: Partial<SseReadOptions> = {}): Promise<SseFrame[]> {
  const frames: SseFrame[] = [];
  const r = await readSse(`${base}/v1/tasks/${taskId}/events`, {
    cutAfterMs: 110_000,
    ...opts,
    onFrame: (f) => {
      frames.push(f);
      if (opts.onFrame?.(f) === false) return false;
      return !TERMINAL.has(f.event);
    },
  });
  expect(r.status).toBe(200);
  return frames;
}

const deltasOf = (frames: readonly SseFrame[]) => frames.filter((f) => f.event === "delta").map((f) => JSON.parse(f.data) as Delta);

/** The stream of a `stream: true` task: ≥ 2 deltas, all before the step they preview, without ids, and together its text. */
function expectDeltasThenStep(frames: readonly SseFrame[], taskId: string): void {
  const firstStep = frames.findIndex((f) => f.event === "step");
  expect(firstStep).toBeGreaterThan(0);
  const before = frames.slice(0, firstStep);
  const deltas = deltasOf(before);
  expect(deltas.length).toBeGreaterThanOrEqual(2);
  expect(before.filter((f) => f.event === "delta").every((f) => f.id === undefined)).toBe(true);
  expect(deltasOf(frames.slice(firstStep))).toEqual([]);
  expect(deltas.map((d) => d.index)).toEqual(deltas.map((_, i) => i));
  expect(deltas.every((d) => d.task_id === taskId && d.step === 1 && d.block === 0)).toBe(true);
  const step = JSON.parse(frames[firstStep]?.data ?? "{}") as StepData;
  expect(step.kind).toBe("llm");
  expect(frames[firstStep]?.id).toBe("4");
  const text = step.content?.find((b) => b.type === "text")?.text;
  expect(text).toContain("You said:");
  expect(deltas.map((d) => d.text).join("")).toBe(text);
  expect(frames.at(-1)?.event).toBe("succeeded");
}

/** The two agents of these tests, `streamer` (`stream: true`) and `plain`, as agent files in `dir`. */
function writeAgents(dir: string): void {
  fs.writeFileSync(path.join(dir, "streamer.md"), STREAMER);
  fs.writeFileSync(path.join(dir, "plain.md"), PLAIN);
}

async function submitTo(base: string, agent: string): Promise<string> {
  const s = await submitTask(base, { agent, input: INPUT });
  expect(s.status).toBe(202);
  return s.id;
}

describe("taskStream deltas - one embedded node", () => {
  const data = tempDir("clawfleet-deltas-");
  const prompts = tempDir("clawfleet-deltas-prompts-");
  let node: NodeProcess | undefined;
  let base: string;

  beforeAll(async () => {
    writeAgents(prompts.dir);
    node = await startNodeProcess({
      name: "deltas",
      env: { CLAWFLEET_DATA_DIR: data.dir, CLAWFLEET_NAMESPACE: `e2e-deltas-${process.pid}`, CLAWFLEET_PROMPTS_DIR: prompts.dir, CLAWFLEET_SIM_LATENCY_MS: LATENCY_MS },
      timeoutMs: 110_000,
    });
    base = `http://127.0.0.1:${node.port}`;
  }, 120_000);

  afterAll(async () => {
    if (node) await stopAll([node]);
    data.remove();
    prompts.remove();
  }, 60_000);

  it("stream: true - deltas before the step, without ids, whose text is the step's", async () => {
    const id = await submitTo(base, "streamer");
    expectDeltasThenStep(await follow(base, id), id);
  }, 120_000);

  it("a reconnect replays no delta: mid-turn only later ones come, after the end none", async () => {
    const id = await submitTo(base, "streamer");
    let seen = 0;
    const first = await follow(base, id, { onFrame: (f) => !(f.event === "delta" && ++seen === 2) });
    const cut = deltasOf(first);
    expect(cut).toHaveLength(2);
    expect(first.every((f) => f.id === undefined)).toBe(true);

    // No id was received: the client resumes from the start, and the deltas already sent do not come again.
    const second = await follow(base, id);
    const later = deltasOf(second.slice(0, second.findIndex((f) => f.event === "step")));
    expect(later.length).toBeGreaterThan(0);
    expect(Math.min(...later.map((d) => d.index))).toBeGreaterThan(Math.max(...cut.map((d) => d.index)));

    const replay = await follow(base, id, { lastEventId: "0" });
    expect(replay.map((f) => f.event)).toEqual(["step", "succeeded"]);
  }, 120_000);

  it("an agent without stream gets no delta events", async () => {
    const id = await submitTo(base, "plain");
    const frames = await follow(base, id);
    expect(frames.map((f) => f.event)).toEqual(["step", "succeeded"]);
    expect(frames[0]?.id).toBe("4");
  }, 120_000);
});

const distributed = hasService("postgres") && hasService("redis") && hasService("nats");

describe.skipIf(!distributed)("taskStream deltas - distributed: rate-gateway and api in their own processes", () => {
  const prompts = tempDir("clawfleet-deltas-dist-prompts-");
  const nodes: NodeProcess[] = [];
  let scratch: Scratch | undefined;
  let base: string;

  beforeAll(async () => {
    writeAgents(prompts.dir);
    const s = await createScratch("e2edeltas");
    scratch = s;
    const env = (services: string) => ({ ...s.env(services), CLAWFLEET_PROMPTS_DIR: prompts.dir, CLAWFLEET_SIM_LATENCY_MS: LATENCY_MS });
    nodes.push(await startNodeProcess({ name: "checkpoint", env: env("checkpoint"), timeoutMs: 110_000 }));
    const rest = await Promise.all([
      startNodeProcess({ name: "rate-gateway", env: env("rate-gateway"), timeoutMs: 110_000 }),
      startNodeProcess({ name: "planner", env: env("planner"), timeoutMs: 110_000 }),
      startNodeProcess({ name: "executor", env: env(EXECUTOR_ROLES), timeoutMs: 110_000 }),
      startNodeProcess({ name: "api", env: env("api,intake"), timeoutMs: 110_000 }),
    ]);
    nodes.push(...rest);
    base = `http://127.0.0.1:${rest[3]?.port}`;
  }, 240_000);

  afterAll(async () => {
    await stopAll(nodes);
    await scratch?.remove();
    prompts.remove();
  }, 60_000);

  it("stream: true - the gateway's deltas reach the api's stream before the step", async () => {
    const id = await submitTo(base, "streamer");
    expectDeltasThenStep(await follow(base, id), id);
  }, 120_000);
});
