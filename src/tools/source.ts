/**
 * Where the executor finds tools. Three kinds: in-process definitions
 * (`defineTool`), actions of the cluster's services that carry the
 * `ClawfleetTools` mixin, and the MCP servers an agent file declares. The
 * executor asks each source in turn; it alone validates the model's input,
 * applies the timeout, keeps the side-effect ledger and shapes the result, so a
 * source only says what a tool is and how to invoke it.
 */
import type { AgentDefinition } from "../agent/definition";
import type { DescribedToolSpec, ToolSpec } from "../contracts";
import type { ToolIssue } from "./inputSchema";
import type { ToolContext } from "./tool";

export type ToolSourceKind = "local" | "service" | "mcp";

/** One tool, as a source resolved it for one agent. */
export interface ResolvedTool {
  /** The name the model uses (MCP tools: `<server>__<tool>`). */
  name: string;
  description: string;
  /** JSON Schema of the input: shown to the model, and what the executor validates the model's input against. */
  inputSchema: Record<string, unknown>;
  /** A tool that changes the world: run at most once per idempotency key (the executor's ledger sees to it). */
  sideEffect: boolean;
  /** @default 10000 (the executor's) */
  timeoutMs?: number;
  /** Where it runs, for logs and spans: `local`, the action name `svc.action`, or `mcp:<server>`. */
  target: string;
  /**
   * Checks a source can make beyond the JSON Schema (a zod refinement of a local tool), run after it and
   * before the side-effect ledger: the problems with `input`, or undefined when there are none.
   */
  check?(input: unknown): ToolIssue[] | undefined;
  /**
   * Runs the tool on input the executor has already validated. Resolves to the tool's output; rejects with the
   * tool's own error (the model is told), or with a retryable error when the tool's back end is unreachable.
   * `ctx.signal` aborts at the executor's timeout.
   */
  invoke(input: unknown, ctx: ToolContext): Promise<unknown>;
}

export interface ToolSource {
  readonly kind: ToolSourceKind;
  /** The tool this source holds under `name` for `agent`, or undefined when it holds none. */
  resolve(agent: AgentDefinition, name: string): Promise<ResolvedTool | undefined>;
  /** Every tool this source holds for `agent` (the allow-list is applied by the caller). */
  list(agent: AgentDefinition): Promise<ResolvedTool[]>;
  close?(): Promise<void>;
}

export function specOf(tool: ResolvedTool): ToolSpec {
  return { name: tool.name, description: tool.description, input_schema: tool.inputSchema };
}

/** The spec with whether the tool is a side effect, as `executor.specs` answers the planner that asks. */
export function describedSpecOf(tool: ResolvedTool): DescribedToolSpec {
  return { ...specOf(tool), side_effect: tool.sideEffect };
}

/**
 * The planner's side: the specs exactly as the model is to be shown them (the flag taken off), and the names of
 * the side-effect tools among them; `sideEffects` is undefined when any spec lacks the flag (an executor that
 * predates it): not known, so no call is premarked.
 */
export function splitDescribedSpecs(described: readonly DescribedToolSpec[]): { specs: ToolSpec[]; sideEffects: ReadonlySet<string> | undefined } {
  const specs = described.map(({ name, description, input_schema }) => ({ name, description, input_schema }));
  const known = described.every((s) => typeof s.side_effect === "boolean");
  return { specs, sideEffects: known ? new Set(described.filter((s) => s.side_effect === true).map((s) => s.name)) : undefined };
}
