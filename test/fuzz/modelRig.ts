/**
 * The model-response fuzz suite's rig: the simulated model over HTTP, answering
 * each task from its script, and an embedded node whose rate gateway calls it with
 * the official SDK, serving two agents (text and json results) and three
 * in-process tools that record what they were called with.
 */
import { afterAll, beforeAll } from "vitest";
import { z } from "zod";
import { startNode, type ClawfleetNode } from "../../app/node";
import { defineAgent } from "../../src/agent/definition";
import { loadConfig } from "../../src/config";
import { firstUserText, startSimServer, type PolicyRoute, type SimServer } from "../../src/sim";
import { defineTool } from "../../src/tools/define";
import { uniqueId } from "../helpers/services";
import { materialize, turnIndex, type GenTurn } from "./modelArbitraries";
import type { TaskShape } from "./taskStates";

/** How long one task may take to reach a final state before it counts as hung. */
export const TASK_BOUND_MS = 20_000;

const LookupInput = z.object({ id: z.string().min(1).max(20), count: z.number().int().min(0).max(5).optional() }).strict();
const RecordInput = z.object({ note: z.string(), level: z.enum(["a", "b"]) }).strict();

/** What the tools were called with that their own schemas refuse, and calls of the tool no agent may use. */
export const observed = { refusedInputs: [] as string[], forbiddenCalls: 0, lookup: 0, record: 0 };

const tools = [
  defineTool({
    name: "lookup",
    description: "Looks a thing up by id.",
    input: LookupInput,
    run(input) {
      observed.lookup++;
      if (!LookupInput.safeParse(input).success) observed.refusedInputs.push(`lookup ${JSON.stringify(input)}`);
      return { found: true, id: (input as { id?: unknown }).id };
    },
  }),
  defineTool({
    name: "record",
    description: "Records a note.",
    input: RecordInput,
    sideEffect: true,
    run(input) {
      observed.record++;
      if (!RecordInput.safeParse(input).success) observed.refusedInputs.push(`record ${JSON.stringify(input)}`);
      return { recorded: true };
    },
  }),
  defineTool({
    name: "secret_tool",
    description: "Served by this node, on no agent's list.",
    input: z.object({}).passthrough(),
    run() {
      observed.forbiddenCalls++;
      return { leaked: true };
    },
  }),
];

const agentSpec = (name: string, result: "text" | "json") =>
  defineAgent({
    name,
    tools: ["lookup", "record"],
    tiers: { d: { model: "claude-haiku-4-5", max_tokens: 1024 } },
    default_tier: "d",
    budgets: { max_steps: 8 },
    result,
    prompt: "Answer from the tools.",
  });

/** The scripts, by the task input that names them (the first user message the sim reads). */
const scripts = new Map<string, readonly GenTurn[]>();

const scripted: PolicyRoute = {
  name: "fuzz-script",
  matches: (req) => scripts.has(firstUserText(req.messages)),
  policy(req) {
    const key = firstUserText(req.messages);
    const turn = materialize(scripts.get(key) ?? [], key.replace(/\W/g, ""), turnIndex(req));
    return turn ?? { content: [{ type: "text", text: "done" }], stop_reason: "end_turn" };
  },
};

export interface StepJson {
  step: number;
  kind: "llm" | "tool";
  stop_reason?: string | null;
  content?: Array<{ type: string; id?: string; name?: string }>;
  tool?: string;
  tool_use_id?: string;
}

/** What is wrong with a finished task's steps: numbering, and tool steps that answer no call of the turn before. */
export function stepProblems(status: string, steps: readonly StepJson[]): string[] {
  const out: string[] = [];
  steps.forEach((s, i) => {
    if (s.step !== i + 1) out.push(`step ${i + 1} is numbered ${s.step}`);
  });
  let owed: Array<{ id?: string; name?: string }> = [];
  for (const s of steps) {
    if (s.kind === "llm") {
      if (owed.length > 0) out.push(`llm step ${s.step} while ${owed.length} tool results are owed`);
      owed = (s.content ?? []).filter((b) => b.type === "tool_use");
      continue;
    }
    const call = owed.shift();
    if (!call) out.push(`tool step ${s.step} answers no call`);
    else if (call.name !== s.tool || call.id !== s.tool_use_id) out.push(`tool step ${s.step} (${s.tool}) does not answer call ${call.name}`);
  }
  const last = steps.at(-1);
  if (status === "succeeded") {
    if (!last || last.kind !== "llm" || owed.length > 0) out.push("succeeded without a final model answer");
    else if (last.stop_reason === "max_tokens" || last.stop_reason === "refusal") out.push(`succeeded on a ${last.stop_reason} answer`);
  }
  return out;
}

export type TaskJson = TaskShape & { error: { type: string; message: string } | null };

export interface ModelRig {
  base: string;
  /** Submits a task for `agent` whose model answers `script`; waits for a final state (at most TASK_BOUND_MS). */
  run(agent: "fz-text" | "fz-json", script: readonly GenTurn[]): Promise<{ id: string; task: TaskJson; steps: StepJson[] }>;
  stop(): Promise<void>;
}

export async function startModelRig(env: Record<string, string> = {}): Promise<ModelRig> {
  const sim: SimServer = await startSimServer({ port: 0, policies: [scripted] });
  let node: ClawfleetNode;
  try {
    const config = loadConfig({
      ANTHROPIC_BASE_URL: sim.url,
      CLAWFLEET_AUTH: "off",
      CLAWFLEET_USER_SERVICES: "none",
      CLAWFLEET_DATA_DIR: "memory://",
      CLAWFLEET_NAMESPACE: uniqueId("fuzzmodel"),
      CLAWFLEET_MAX_ATTEMPTS: "2",
      PORT: "0",
      LOG_LEVEL: "fatal",
      ...env,
    });
    node = await startNode(config, { agents: [agentSpec("fz-text", "text"), agentSpec("fz-json", "json")], tools });
  } catch (err) {
    await sim.close();
    throw err;
  }
  const base = `http://127.0.0.1:${node.port}`;
  return {
    base,
    async run(agent, script) {
      const input = `fuzz case ${uniqueId("")}`;
      scripts.set(input, script);
      const submitted = await fetch(`${base}/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ agent, input }) });
      if (submitted.status !== 202) throw new Error(`submission answered ${submitted.status}: ${await submitted.text()}`);
      const { id } = (await submitted.json()) as { id: string };
      const deadline = Date.now() + TASK_BOUND_MS;
      for (;;) {
        const task = (await (await fetch(`${base}/v1/tasks/${id}`)).json()) as TaskJson;
        if (task.status === "succeeded" || task.status === "failed") {
          const { steps } = (await (await fetch(`${base}/v1/tasks/${id}/steps`)).json()) as { steps: StepJson[] };
          return { id, task, steps };
        }
        if (Date.now() > deadline) throw new Error(`task ${id} still ${task.status} after ${TASK_BOUND_MS} ms (attempts ${task.attempts}, steps ${task.steps})`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      await node.stop();
      await sim.close();
    },
  };
}

/** A rig for a describe block: started before its tests, stopped after them. */
export function useModelRig(): () => ModelRig {
  let rig: ModelRig | undefined;
  beforeAll(async () => {
    rig = await startModelRig();
  }, 60_000);
  afterAll(async () => {
    await rig?.stop();
  });
  return () => {
    if (!rig) throw new Error("the model rig did not start");
    return rig;
  };
}
