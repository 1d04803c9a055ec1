/**
 * duplicate tool calls - a real node (embedded, one process) running a test agent
 * whose prompt makes the model look every order up twice with the same input
 * (test/fixtures/prompts/order-router-dup.md; the simulated model honours its
 * directive). Each task shows one duplicate in the planner's counter, labelled by
 * agent, tool and prompt version, and one `tool.duplicate_call` warning naming both steps.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, ROOT, startNodeProcess, stopAll, submitTask, waitForTasks, type NodeProcess } from "../../testkit/cluster";

interface StepJson {
  step: number;
  kind: "llm" | "tool";
  tool?: string;
  input?: unknown;
}

describe("duplicate tool calls - an agent prompted to repeat a call", () => {
  let node: NodeProcess;
  let base: string;

  beforeAll(async () => {
    node = await startNodeProcess({
      name: "embedded",
      env: { CLAWFLEET_DATA_DIR: "memory://", CLAWFLEET_PROMPTS_DIR: path.join(ROOT, "test", "fixtures", "prompts") },
    });
    base = `http://127.0.0.1:${node.port}`;
  }, 90_000);

  afterAll(async () => {
    if (node) await stopAll([node]);
  }, 60_000);

  it("counts each repeated call once per task and logs a warning with both steps", async () => {
    const submitted = await Promise.all(["ORD-1042", "ORD-1077"].map((o) => submitTask(base, { agent: "order-router-dup", input: { order_id: o } })));
    const ids = submitted.map((s) => s.id);
    const done = await waitForTasks(base, ids, 30_000);
    expect(ids.map((id) => done.get(id)?.status)).toEqual(["succeeded", "succeeded"]);
    const promptVersion = done.get(ids[0] as string)?.prompt_version as string;

    const lines = node
      .output()
      .split("\n")
      .filter((l) => l.includes('"event":"tool.duplicate_call"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const id of ids) {
      const { steps } = await getJson<{ steps: StepJson[] }>(`${base}/v1/tasks/${id}/steps`);
      const lookups = steps.filter((s) => s.tool === "lookup_order");
      expect(lookups).toHaveLength(2);
      expect(lookups[1]?.input).toEqual(lookups[0]?.input);
      const warnings = lines.filter((l) => l.taskId === id);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({
        level: "warn",
        event: "tool.duplicate_call",
        tool: "lookup_order",
        first_step: lookups[0]?.step,
        step: lookups[1]?.step,
        agent: "order-router-dup",
        prompt_version: promptVersion,
        input_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
        nodeID: expect.any(String),
        time: expect.any(String),
      });
    }

    const metrics = await (await fetch(`${base}/metrics`)).text();
    const series = metrics.split("\n").filter((l) => l.startsWith("clawfleet_duplicate_tool_calls_total{"));
    expect(series).toEqual([expect.stringMatching(new RegExp(`^clawfleet_duplicate_tool_calls_total\\{agent="order-router-dup",prompt_version="${promptVersion}",tool="lookup_order",node="[^"]+"\\} 2$`))]);
  }, 60_000);
});
