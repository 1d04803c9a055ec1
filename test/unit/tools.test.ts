import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ToolNotFoundError, UnavailableError } from "../../src/errors";
import { ToolRegistry } from "../../src/tools/registry";
import type { ToolCall } from "../../src/contracts";
import type { ToolDefinition } from "../../src/tools/tool";

let step = 0;
function call(tool: string, input: unknown, over: Partial<ToolCall> = {}): ToolCall {
  step += 1;
  const taskId = over.taskId ?? "task-1";
  return { taskId, agent: "order-router", step, tool, toolUseId: `toolu_${step}`, input, idempotencyKey: `${taskId}:${step}`, ...over };
}

function tool<I>(def: Partial<ToolDefinition<I>> & Pick<ToolDefinition<I>, "name" | "input" | "run">): ToolDefinition<I> {
  return { description: `the ${def.name} tool`, sideEffect: false, ...def };
}

describe("tool registry", () => {
  const registry = new ToolRegistry()
    .register(tool({ name: "echo", input: z.object({ text: z.string(), times: z.number().int().min(1) }), run: async (i) => i }))
    .register(
      tool({
        name: "boom",
        input: z.object({}),
        run: async () => {
          throw new Error("the widget is jammed");
        },
      }),
    )
    .register(
      tool({
        name: "sync_boom",
        input: z.object({}),
        run: () => {
          throw new Error("thrown before any await");
        },
      }),
    )
    .register(
      tool({
        name: "db_down",
        input: z.object({}),
        run: async () => {
          throw new UnavailableError("database unavailable");
        },
      }),
    );

  it("registry - an unknown tool is an ok:false result naming the tool", async () => {
    const res = await registry.run(call("teleport", {}));
    expect(res.ok).toBe(false);
    expect(res.output).toMatchObject({ error: expect.stringContaining('unknown tool "teleport"') });
  });

  it("registry - input failing the schema lists each issue with its path", async () => {
    const res = await registry.run(call("echo", { text: 5, times: 0 }));
    expect(res.ok).toBe(false);
    const out = res.output as { error: string; issues: Array<{ path: string; message: string }> };
    expect(out.error).toBe("invalid input");
    expect(out.issues.map((i) => i.path).sort()).toEqual(["text", "times"]);
  });

  it("registry - a nested issue path is dotted", async () => {
    const items = z.array(z.object({ sku: z.string(), quantity: z.number().int().min(1) }));
    const r = new ToolRegistry().register(tool({ name: "check_inventory", input: z.object({ warehouse_id: z.string(), items }), run: async (i) => i }));
    const res = await r.run(call("check_inventory", { warehouse_id: "WH-DUB", items: [{ sku: "SKU-1001", quantity: 0 }] }));
    expect(res.ok).toBe(false);
    expect((res.output as { issues: Array<{ path: string }> }).issues[0]?.path).toBe("items.0.quantity");
  });

  it("registry - valid input runs the tool and measures its duration", async () => {
    const res = await registry.run(call("echo", { text: "hi", times: 2 }));
    expect(res).toMatchObject({ ok: true, output: { text: "hi", times: 2 } });
    expect(res.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it("registry - a throwing tool becomes an ok:false result with its message", async () => {
    expect(await registry.run(call("boom", {}))).toMatchObject({ ok: false, output: { error: "the widget is jammed" } });
    expect(await registry.run(call("sync_boom", {}))).toMatchObject({ ok: false, output: { error: "thrown before any await" } });
  });

  it("registry - a tool past its timeout is aborted and answers ok:false", async () => {
    let seen: AbortSignal | undefined;
    const r = new ToolRegistry().register(
      tool({
        name: "slow",
        input: z.object({}),
        timeoutMs: 30,
        run: (_i, ctx) => {
          seen = ctx.signal;
          return new Promise((resolve) => setTimeout(resolve, 5_000).unref());
        },
      }),
    );
    const res = await r.run(call("slow", {}));
    expect(res.ok).toBe(false);
    expect(res.output).toMatchObject({ error: expect.stringContaining("timed out after 30 ms") });
    expect(res.duration_ms).toBeGreaterThanOrEqual(25);
    expect(seen?.aborted).toBe(true);
  });

  it("registry - a retryable infrastructure error propagates instead of reaching the model", async () => {
    await expect(registry.run(call("db_down", {}))).rejects.toBeInstanceOf(UnavailableError);
  });

  it("registry - specs give JSON Schema without $schema, in the order asked", () => {
    const specs = registry.specs(["echo", "boom"]);
    expect(specs.map((s) => s.name)).toEqual(["echo", "boom"]);
    expect(specs[0]?.input_schema).not.toHaveProperty("$schema");
    expect(specs[0]?.input_schema).toMatchObject({ type: "object", properties: { text: { type: "string" } }, required: ["text", "times"] });
    expect(() => registry.specs(["nope"])).toThrow(ToolNotFoundError);
  });

  it("registry - registering a name twice is refused", () => {
    expect(() => registry.register(tool({ name: "echo", input: z.object({}), run: async () => null }))).toThrow(/registered twice/);
  });
});
