/**
 * The tools an executor can run. Whatever goes wrong at the tool level (unknown
 * tool, bad input from the model, the tool failing or timing out) comes back as
 * an `ok: false` result for the model to read and react to. Only errors marked
 * retryable (a back end that is down) are thrown, so the caller retries the step
 * instead of telling the model something it cannot fix.
 */
import { TOOL_NAME_PATTERN, type ToolCall, type ToolResult, type ToolSpec } from "../contracts";
import { ConfigError, ToolNotFoundError, isRetryable, messageOf } from "../errors";
import { jsonSchemaOfZod, type ToolIssue } from "./inputSchema";
import { ToolTimeout, withToolTimeout } from "./timeout";
import type { ToolDefinition, ToolRunner } from "./tool";

export type { ToolIssue } from "./inputSchema";

export const DEFAULT_TIMEOUT_MS = 10_000;


export class ToolRegistry implements ToolRunner {
  private readonly tools = new Map<string, ToolDefinition>();

  register<I, O>(def: ToolDefinition<I, O>): this {
    if (!TOOL_NAME_PATTERN.test(def.name)) throw new ConfigError(`tool ${def.name}`, "tool names match ^[a-zA-Z0-9_-]{1,64}$");
    if (this.tools.has(def.name)) throw new ConfigError(`tool ${def.name}`, "is registered twice");
    this.tools.set(def.name, def);
    return this;
  }

  has(name: string): boolean {
    return this.tools.has(name);
  }

  get(name: string): ToolDefinition | undefined {
    return this.tools.get(name);
  }

  names(): string[] {
    return [...this.tools.keys()];
  }

  /** What the model is shown for the named tools, in the order asked. */
  specs(names: readonly string[]): ToolSpec[] {
    return names.map((name) => {
      const def = this.tools.get(name);
      if (!def) throw new ToolNotFoundError(`no tool named "${name}" is registered`, { tool: name, known: this.names() });
      // The model writes the input, so it is shown the input side of any transform.
      return { name: def.name, description: def.description, input_schema: jsonSchemaOfZod(def.input) };
    });
  }

  async run(call: ToolCall): Promise<ToolResult> {
    const started = performance.now();
    const result = (ok: boolean, output: unknown): ToolResult => ({ ok, output, duration_ms: Math.round(performance.now() - started) });

    const def = this.tools.get(call.tool);
    if (!def) return result(false, { error: `unknown tool "${call.tool}"; available: ${this.names().join(", ")}` });

    const parsed = def.input.safeParse(call.input);
    if (!parsed.success) {
      const issues: ToolIssue[] = parsed.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
      return result(false, { error: "invalid input", issues });
    }

    const timeoutMs = def.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const base = { taskId: call.taskId, step: call.step, agent: call.agent, idempotencyKey: call.idempotencyKey };
    try {
      return result(true, await withToolTimeout(def.name, timeoutMs, (signal) => def.run(parsed.data, { ...base, signal })));
    } catch (err) {
      if (!(err instanceof ToolTimeout) && isRetryable(err)) throw err;
      return result(false, { error: messageOf(err) });
    }
  }
}
