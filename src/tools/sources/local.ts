/**
 * In-process tools (`defineTool`, registered in the executor's `ToolRegistry`)
 * as a tool source. The executor checks the model's input against the JSON
 * Schema first; the tool's own zod schema then catches what JSON Schema cannot
 * say (refinements), before any ledger entry, and hands the tool its parsed
 * input (defaults and transforms applied).
 */
import type { AgentDefinition } from "../../agent/definition";
import { jsonSchemaOfZod, type ToolIssue } from "../inputSchema";
import type { ToolRegistry } from "../registry";
import type { ResolvedTool, ToolSource } from "../source";
import type { ToolDefinition } from "../tool";

export class LocalToolSource implements ToolSource {
  readonly kind = "local" as const;
  private readonly resolved = new WeakMap<ToolDefinition, ResolvedTool>();

  constructor(private readonly registry: ToolRegistry) {}

  async resolve(_agent: AgentDefinition, name: string): Promise<ResolvedTool | undefined> {
    const def = this.registry.get(name);
    return def && this.toResolved(def);
  }

  async list(_agent: AgentDefinition): Promise<ResolvedTool[]> {
    return this.registry.names().flatMap((name) => {
      const def = this.registry.get(name);
      return def ? [this.toResolved(def)] : [];
    });
  }

  private toResolved(def: ToolDefinition): ResolvedTool {
    let tool = this.resolved.get(def);
    if (tool) return tool;
    tool = {
      name: def.name,
      description: def.description,
      inputSchema: jsonSchemaOfZod(def.input),
      sideEffect: def.sideEffect,
      ...(def.timeoutMs !== undefined ? { timeoutMs: def.timeoutMs } : {}),
      target: "local",
      check: (input) => {
        const parsed = def.input.safeParse(input);
        if (parsed.success) return undefined;
        return parsed.error.issues.map((i): ToolIssue => ({ path: i.path.map(String).join("."), message: i.message }));
      },
      invoke: (input, ctx) => def.run(def.input.parse(input), ctx),
    };
    this.resolved.set(def, tool);
    return tool;
  }
}
