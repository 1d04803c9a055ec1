/**
 * How the executor runs one tool call, whatever the tool's source: the agent's
 * allow-list (checked again: the planner checks it first), the tool found through
 * the sources, the model's input checked against the tool's JSON Schema, the
 * tool's timeout, and for a side-effect tool the ledger that keeps it to at most
 * one effect per idempotency key. Whatever the model can fix (unknown tool, bad
 * input, the tool's own failure) comes back as an `ok: false` result; only what
 * it cannot is thrown.
 *
 * The ledger, per idempotency key (`taskId:step`), in the task database:
 *
 *   (no row) ──start──▶ STARTED(1) ──tool answered──▶ FINISHED(outcome)
 *   STARTED(n) ──timeout, node lost, transport error──▶ STARTED(n), ToolOutcomeUnknownError (retryable):
 *       the attempt ends, and the same step is dispatched again with the same key
 *   STARTED(n) ──start──▶ STARTED(n+1): the tool is asked again, with the same key, to dedupe on
 *   FINISHED ──start──▶ FINISHED: the recorded outcome answers; the tool is not called
 *   STARTED(n), n ≥ maxUnknownOutcomes, outcome unknown again ──▶ ToolOutcomeUnknownError (final): the task fails
 *
 * A step with a row is never refused to the model (unknown tool, input no longer valid): its tool may have
 * acted, so a recorded outcome answers, and an unknown one stays unknown (STARTED(n+1), same errors).
 *
 * Premarked calls. The planner writes STARTED(1) earlier, with the checkpoint of the model turn that asks
 * for the call (`appendStep`'s marks), for the side-effect calls no approval gates, and sets `premarked` on
 * the call's first dispatch by that same attempt. That row means what a start means ("dispatched, outcome
 * unknown until recorded"), so the executor counts it as this call's start and writes none (one commit less):
 *
 *   STARTED(1), premarked ──tool answered──▶ FINISHED(outcome); unknown ──▶ STARTED(1), ToolOutcomeUnknownError
 *   STARTED(1), premarked, refused (unknown tool, not allowed, bad input) ──▶ FINISHED(the refusal): the tool
 *       never ran, and a resumed attempt is answered the same refusal from the ledger
 *
 * Every later dispatch of the step (a resumed attempt) is not premarked and goes through the table above. The
 * one cost: a crash between that checkpoint and the call counts one unknown outcome that was not one (an
 * attempt that stops there, or runs out of wall time, gives its premarks back instead: the store's
 * `toolCallUnmark`, src/agent/premark.ts). An
 * executor that predates the flag ignores it and starts the call again: STARTED(2), harmless.
 *
 * The outcome is recorded before the executor answers, so before the planner
 * checkpoints the step: a crash anywhere in between leaves either a recorded
 * outcome (answered again) or an unknown one (asked again), never a fresh call.
 */
import { allows, type AgentDefinition } from "../agent/definition";
import type { DescribedToolSpec, ToolCall, ToolOutcome, ToolResult, ToolSpec } from "../contracts";
import { isRetryable, messageOf, ToolOutcomeUnknownError, UnavailableError } from "../errors";
import type { Logger } from "../logging";
import type { TaskStore } from "../store/types";
import { checkInput, type ToolIssue } from "./inputSchema";
import { DEFAULT_TIMEOUT_MS } from "./registry";
import { describedSpecOf, specOf, type ResolvedTool, type ToolSource } from "./source";
import { ToolTimeout, withToolTimeout } from "./timeout";
import type { ToolRunner } from "./tool";

export type ToolLedger = Pick<TaskStore, "toolCallStarted" | "toolCallFinished" | "getToolCall">;

export interface ToolExecutorOptions {
  /** Asked in order; the first that holds a name serves it. */
  sources: readonly ToolSource[];
  /** The agents whose allow-lists are enforced here. */
  agents: { get(name: string): AgentDefinition; has(name: string): boolean };
  ledger: ToolLedger;
  /** Unknown outcomes of one side-effect call before the task fails instead of asking again. */
  maxUnknownOutcomes: number;
  /** For tools that set none. @default 10000 */
  defaultTimeoutMs?: number;
  logger: Pick<Logger, "warn">;
}

/** How one call of a tool ended, as far as the executor can tell. */
type Attempted =
  | { kind: "answered"; output: unknown }
  /** The tool's own failure: it answered with an error. */
  | { kind: "failed"; message: string }
  /** It may or may not have run: it timed out, or the way to it broke (retryable). */
  | { kind: "unknown"; reason: string; timedOut: boolean; err: unknown };

export class ToolExecutor implements ToolRunner {
  private readonly defaultTimeoutMs: number;

  constructor(private readonly opts: ToolExecutorOptions) {
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The specs the model is shown for `agent`: the tools `names` lists that some source holds, in the order listed. */
  async specs(agentName: string, names: readonly string[]): Promise<ToolSpec[]> {
    return (await this.toolsOf(agentName, names)).map(specOf);
  }

  /** The same specs, each with whether its tool is a side effect: for the planner, never for the model. */
  async describe(agentName: string, names: readonly string[]): Promise<DescribedToolSpec[]> {
    return (await this.toolsOf(agentName, names)).map(describedSpecOf);
  }

  private async toolsOf(agentName: string, names: readonly string[]): Promise<ResolvedTool[]> {
    const agent = this.opts.agents.get(agentName);
    const out = new Map<string, ResolvedTool>();
    const missing: string[] = [];
    let everything: ResolvedTool[] | undefined;
    for (const entry of names) {
      if (entry.endsWith("__*")) {
        everything ??= await this.listAll(agent);
        const prefix = entry.slice(0, -1);
        for (const t of everything) if (t.name.startsWith(prefix) && allows(agent, t.name) && !out.has(t.name)) out.set(t.name, t);
        continue;
      }
      if (out.has(entry) || !allows(agent, entry)) continue;
      const tool = await this.resolve(agent, entry);
      if (tool) out.set(entry, tool);
      else missing.push(entry);
    }
    if (missing.length > 0) {
      this.opts.logger.warn(
        { event: "tools.missing", agent: agent.name, tools: missing },
        `agent ${agent.name} lists tools no source holds now: ${missing.join(", ")} (a tool service not started, or gone)`,
      );
    }
    return [...out.values()];
  }

  /**
   * `cancel`: the caller gave up (its planner is shutting down). A tool without side effects is stopped and the
   * call rejects with the cancel's reason (the step is asked again later); a side-effect tool is never stopped
   * midway: it runs to its outcome, which is recorded, so the step's next call gets that outcome, not a second run.
   */
  async run(call: ToolCall, cancel?: AbortSignal): Promise<ToolResult> {
    const started = performance.now();
    const result = (ok: boolean, output: unknown, replayed?: boolean): ToolResult => ({
      ok,
      output,
      duration_ms: Math.round(performance.now() - started),
      ...(replayed ? { replayed } : {}),
    });

    // Refused before any call. Unless this very step was called before (a side effect that may have acted,
    // and whose tool is gone or changed since): then only the ledger answers, never the model's retry.
    const refuse = async (error: unknown): Promise<ToolResult> => {
      const prior = await this.opts.ledger.getToolCall(call.idempotencyKey);
      if (prior?.outcome) return result(prior.outcome.ok, prior.outcome.output, true);
      if (!prior) return result(false, error);
      // The row is this dispatch's own premark, and nothing ran: the refusal is the call's outcome, for every
      // later dispatch of the step to be answered with (a row left unknown would stay unknown for good).
      if (call.premarked && prior.starts === 1) {
        const recorded = await this.opts.ledger.toolCallFinished(call.idempotencyKey, { ok: false, output: error });
        return result(recorded.ok, recorded.output);
      }
      const entry = await this.opts.ledger.toolCallStarted(call.idempotencyKey, call.taskId, call.step, call.tool);
      if (entry.outcome) return result(entry.outcome.ok, entry.outcome.output, true);
      const reason = `it cannot be asked again now: ${JSON.stringify(error)}`;
      throw this.outcomeUnknown(call, undefined, entry.starts, reason, entry.starts >= this.opts.maxUnknownOutcomes);
    };

    if (!this.opts.agents.has(call.agent)) {
      return refuse({ error: `tool "${call.tool}" is not available: agent ${call.agent} is unknown to this executor` });
    }
    const agent = this.opts.agents.get(call.agent);
    if (!allows(agent, call.tool)) return refuse({ error: `tool "${call.tool}" is not available to agent ${agent.name}` });
    const tool = await this.resolve(agent, call.tool);
    if (!tool) return refuse({ error: `unknown tool "${call.tool}": no tool source holds it now (for a tool service: no node of the cluster offers it)` });
    // The planner took this tool for one without side effects (a description older than the tool's service): its
    // ledger row must not be written for a call whose model turn a crash could still lose.
    if (tool.sideEffect && call.unstored) {
      throw new UnavailableError(`tool "${call.tool}" has side effects: its call waits for the checkpoint of the model turn that asked for it`, { tool: call.tool, step: call.step });
    }

    let issues: ToolIssue[] | undefined;
    try {
      issues = checkInput(tool.inputSchema, call.input) ?? tool.check?.(call.input);
    } catch (err) {
      return refuse({ error: `tool "${call.tool}" cannot be called: its input schema is unusable (${messageOf(err)})` });
    }
    if (issues) return refuse({ error: "invalid input", issues });

    if (!tool.sideEffect) {
      const a = await this.attempt(tool, call, cancel);
      if (a.kind === "answered") return result(true, a.output);
      // Whatever it ended with may be the cancel's doing, not the tool's: no result for the model to see.
      if (cancel?.aborted) throw cancel.reason;
      if (a.kind === "failed") return result(false, { error: a.message });
      // Nothing changed the world: a timeout is the model's to hear about, a broken way to the tool is retried.
      if (a.timedOut) return result(false, { error: a.reason });
      throw a.err;
    }

    // A premarked call's row was written with its model turn's checkpoint: that is this call's start.
    const entry = call.premarked ? { starts: 1, outcome: null } : await this.opts.ledger.toolCallStarted(call.idempotencyKey, call.taskId, call.step, call.tool);
    if (entry.outcome) return result(entry.outcome.ok, entry.outcome.output, true);
    const unknownSoFar = entry.starts - 1;
    if (unknownSoFar >= this.opts.maxUnknownOutcomes) throw this.outcomeUnknown(call, tool, unknownSoFar, "earlier tries", true);

    const a = await this.attempt(tool, call);
    if (a.kind === "unknown") throw this.outcomeUnknown(call, tool, entry.starts, a.reason, entry.starts >= this.opts.maxUnknownOutcomes);
    const outcome: ToolOutcome = a.kind === "answered" ? { ok: true, output: a.output } : { ok: false, output: { error: a.message } };
    // The first outcome recorded is the one every caller gets (a concurrent call of the same step included).
    const recorded = await this.opts.ledger.toolCallFinished(call.idempotencyKey, outcome);
    return result(recorded.ok, recorded.output);
  }

  async close(): Promise<void> {
    for (const s of this.opts.sources) await s.close?.();
  }

  private async resolve(agent: AgentDefinition, name: string): Promise<ResolvedTool | undefined> {
    for (const source of this.opts.sources) {
      const tool = await source.resolve(agent, name);
      if (tool) return tool;
    }
    return undefined;
  }

  /** Every tool of every source for `agent`, the first source's first where names clash. */
  private async listAll(agent: AgentDefinition): Promise<ResolvedTool[]> {
    const seen = new Set<string>();
    const all: ResolvedTool[] = [];
    for (const source of this.opts.sources) {
      for (const t of await source.list(agent)) {
        if (seen.has(t.name)) continue;
        seen.add(t.name);
        all.push(t);
      }
    }
    return all;
  }

  /** One call of the tool, bounded by its timeout (its `ctx.signal` aborts then) and by `cancel` when given. */
  private async attempt(tool: ResolvedTool, call: ToolCall, cancel?: AbortSignal): Promise<Attempted> {
    const timeoutMs = tool.timeoutMs ?? this.defaultTimeoutMs;
    const base = { taskId: call.taskId, step: call.step, agent: call.agent, idempotencyKey: call.idempotencyKey, timeoutMs };
    try {
      const running = withToolTimeout(tool.name, timeoutMs, (signal) => tool.invoke(call.input, { ...base, signal: cancel ? AbortSignal.any([signal, cancel]) : signal }));
      return { kind: "answered", output: await (cancel ? untilAborted(running, cancel) : running) };
    } catch (err) {
      if (err instanceof ToolTimeout || isTimeout(err)) {
        return { kind: "unknown", reason: `tool ${tool.name} timed out after ${timeoutMs} ms`, timedOut: true, err };
      }
      if (isRetryable(err)) return { kind: "unknown", reason: `tool ${tool.name} (${tool.target}) unreachable: ${messageOf(err)}`, timedOut: false, err };
      return { kind: "failed", message: messageOf(err) };
    }
  }

  private outcomeUnknown(call: ToolCall, tool: ResolvedTool | undefined, unknown: number, reason: string, final: boolean): ToolOutcomeUnknownError {
    const max = this.opts.maxUnknownOutcomes;
    const data = { tool: call.tool, target: tool?.target ?? null, idempotencyKey: call.idempotencyKey, taskId: call.taskId, step: call.step, unknownOutcomes: unknown, maxUnknownOutcomes: max, final };
    this.opts.logger.warn(
      { event: "tool.outcome_unknown", ...data, reason },
      final ? `side-effect tool ${call.tool}: outcome unknown ${unknown} times; the task fails rather than risk a second effect` : `side-effect tool ${call.tool}: outcome unknown (${reason}); the step will ask again with the same key`,
    );
    const message = final
      ? `side-effect tool ${call.tool} (${call.idempotencyKey}): its outcome stayed unknown after ${unknown} tries (the limit is ${max}); it is not called again, so as not to risk a second effect`
      : `side-effect tool ${call.tool} (${call.idempotencyKey}): outcome unknown (${reason}); the step is retried with the same idempotency key`;
    return new ToolOutcomeUnknownError(message, data);
  }
}

/** `p`, or the signal's reason once it aborts (a tool that ignores its signal is not waited for). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Timeouts on the way to the tool or inside it (a Moleculer call's, an MCP request's): the tool may have acted. */
function isTimeout(err: unknown): boolean {
  return err instanceof Error && /Timeout/.test(err.name);
}
