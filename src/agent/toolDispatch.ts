/**
 * Runs the tool calls one model turn asked for, together (the model asked for
 * them together), and checkpoints each as it completes (or all with their turn,
 * below). A tool that fails or gets
 * bad input from the model comes back as an `is_error` result for the model to
 * see; only infrastructure errors (retryable) escape to end the attempt.
 *
 * Every call carries the idempotency key `${taskId}:${step}`, stable across
 * resumes, so a side-effecting tool can dedupe a re-execution; a call repeating
 * an earlier one (same tool, same input) is reported, once, when it is checkpointed.
 * Why the model chose its tools is logged here too, next to what they did.
 *
 * A call the agent gates (`approval.tools`, src/approvals) runs only once an
 * operator approved it; a rejected one is checkpointed as an error result without
 * running; one still waiting gets no result here, and the loop parks the task on it.
 *
 * A side-effect call whose ledger row this attempt wrote with its model turn's
 * checkpoint is sent `premarked` on its dispatch (src/agent/premark.ts): the
 * executor then writes no start of its own.
 *
 * The calls of a turn whose checkpoint is not written yet (calls that change
 * nothing: runLoop.ts) are checkpointed with it, in one commit, once all are done
 * (or after it, when they take longer than the turn is held);
 * they go marked `unstored`, so a tool that turns out to have side effects refuses
 * them (retryable) and the turn is stored before it is asked again.
 *
 * The results are handed back once the tools are done; their checkpoints may
 * still be on their way (`stored`). The loop asks the model its next turn
 * meanwhile, and checkpoints that turn only once they are stored (runLoop.ts).
 */
import { context } from "@opentelemetry/api";
import type { Attempt } from "./attempt";
import { gateOf, rejectedResult } from "../approvals/gate";
import { allows } from "./definition";
import { toolResultBlock, toolUses, type PendingToolUse } from "./replay";
import { commitTurn, commitTurnWith, onItsWay, type AnsweredTurn, type StepToStore } from "./modelTurn";
import { toolCallKey } from "./premark";
import type { ToolCallLedger } from "./toolCallLedger";
import type { ContentBlock } from "../contracts";
import type { ToolSpec, UserBlock } from "../contracts";
import type { Approval, ToolResult } from "../contracts";
import { contextFromTraceparent } from "../telemetry/spans";

/** The results of one turn's tool calls, and their checkpoints. */
export interface DispatchedTools {
  /** By step, the result block the model is shown; a gated call still waiting has none. */
  results: Map<number, UserBlock>;
  /**
   * Resolves once every call's checkpoint is stored (and announced); rejects with the first write that failed,
   * after every write has settled. Never an unhandled rejection: it may be awaited later, or not at all.
   */
  stored: Promise<void>;
}

/** A model turn whose checkpoint waits for its calls' results, at most `holdMs` (runLoop.ts). */
export interface HeldTurn {
  turn: AnsweredTurn;
  holdMs: number;
}

/**
 * `parents`: by step, the traceparent of the model turn that asked for the call, its span's parent.
 * `held`: that model turn, its checkpoint not written yet (calls that change nothing run first: runLoop.ts). When
 * every call is done within `holdMs`, their checkpoints are written with it, in one commit (`commitTurnWith`).
 * Calls that take longer do not keep the paid answer unstored meanwhile (a cancel or a crash would lose it): the
 * turn is then written alone, and each result after it. If a call failed, the turn and the others' results are
 * still stored before the attempt ends on its error.
 */
export async function dispatchTools(
  a: Attempt,
  pending: readonly PendingToolUse[],
  ledger: ToolCallLedger,
  parents: ReadonlyMap<number, string>,
  held?: HeldTurn,
): Promise<DispatchedTools> {
  const results = new Map<number, UserBlock>();
  const writes: Promise<void>[] = [];
  /** The results waiting to go with the held turn. */
  const withTurn: StepToStore[] = [];
  /** The held turn's own write, once its calls outlasted `holdMs`; each result then goes after it. */
  let turnAlone: Promise<void> | undefined;
  // A result's own write, after the turn's when that one is on its way. Handled at once (onItsWay): the turn's
  // other calls may still run for a while before firstFailure() looks at it.
  const writeAlone = (c: StepToStore, turnWrite?: Promise<void>) => {
    const append = () => a.store.appendStep(a.task.id, a.fence, c.step);
    return onItsWay((turnWrite ? turnWrite.then(append) : append()).then(c.announce));
  };
  const holding = held
    ? setTimeout(() => {
        const turnWrite = onItsWay(commitTurn(a, held.turn));
        turnAlone = turnWrite;
        writes.push(turnWrite, ...withTurn.splice(0).map((c) => writeAlone(c, turnWrite)));
      }, held.holdMs)
    : undefined;
  // Every call is waited for, even once one has failed: the attempt (and its lease) must not end while a
  // side-effect tool it started is still running, or a successor could ask for the same step meanwhile.
  const ran = await Promise.allSettled(
    pending.map(async (use) => {
      const gate = await gateOf(a, use);
      if (gate.kind === "wait") return;
      if (gate.approval) noteDecision(a, use, gate.approval);
      const result = gate.kind === "reject" ? rejectedResult(gate.approval) : await callTool(a, use, parents.get(use.step), ledger, held !== undefined);
      results.set(use.step, toolResultBlock(use.id, result));
      const checkpoint: StepToStore = {
        step: {
          kind: "tool",
          step: use.step,
          data: {
            tool: use.name,
            tool_use_id: use.id,
            input: use.input,
            output: result.output,
            ok: result.ok,
            duration_ms: result.duration_ms,
            idempotency_key: idempotencyKey(a, use),
          },
        },
        announce: () => {
          a.stepCheckpointed({ taskId: a.task.id, step: use.step, kind: "tool", tool: use.name, ok: result.ok, duration_ms: result.duration_ms, ...a.labels });
          noteDuplicate(a, ledger, use);
        },
      };
      if (held && !turnAlone) withTurn.push(checkpoint);
      else writes.push(writeAlone(checkpoint, turnAlone));
    }),
  );
  clearTimeout(holding);
  const stored = held && !turnAlone ? onItsWay(commitTurnWith(a, held.turn, withTurn)) : firstFailure(writes);
  const failed = ran.find((r) => r.status === "rejected");
  if (failed) {
    // The attempt ends on the tool's error, once the other calls' checkpoints are settled.
    await stored.catch(() => undefined);
    throw failed.reason;
  }
  return { results, stored };
}

/** Settles once every write has: rejected with the first that failed, if any. */
function firstFailure(all: readonly Promise<void>[]): Promise<void> {
  return onItsWay(
    Promise.allSettled(all).then((rs) => {
      const failed = rs.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
    }),
  );
}

const idempotencyKey = (a: Attempt, use: PendingToolUse) => toolCallKey(a.task.id, use.step);

/**
 * A tool outside the agent's allow-list is not run: the model is told it is not available. The executor checks again.
 * `unstored`: the turn that asked for the call may not be checkpointed yet (a side-effect tool refuses the call).
 */
async function callTool(a: Attempt, use: PendingToolUse, parent: string | undefined, ledger: ToolCallLedger, unstored: boolean): Promise<ToolResult> {
  const { task, agent } = a;
  if (!allows(agent, use.name)) {
    return { ok: false, output: { error: `tool "${use.name}" is not available to agent ${agent.name}` }, duration_ms: 0 };
  }
  const premarked = ledger.premarks.take(use.step);
  return context.with(contextFromTraceparent(parent, context.active()), () =>
    a.tools.run({
      taskId: task.id,
      agent: agent.name,
      promptVersion: agent.promptVersion,
      step: use.step,
      tool: use.name,
      toolUseId: use.id,
      input: use.input,
      idempotencyKey: idempotencyKey(a, use),
      ...(premarked ? { premarked } : {}),
      ...(unstored ? { unstored } : {}),
    }, a.callSignal),
  );
}

/** An operator's decision taking effect, with who made it: the record next to the call's own. */
function noteDecision(a: Attempt, use: PendingToolUse, approval: Approval): void {
  a.logger.info(
    { taskId: a.task.id, event: "tool.approval_applied", step: use.step, tool: use.name, decision: approval.decision, by: approval.decided_by, agent: a.agent.name },
    approval.decision === "approve" ? `running ${use.name}, approved by ${approval.decided_by ?? "?"}` : `${use.name} rejected by ${approval.decided_by ?? "?"}; the model is told`,
  );
}

function noteDuplicate(a: Attempt, ledger: ToolCallLedger, use: PendingToolUse): void {
  const duplicate = ledger.enter(use.name, use.input, use.step);
  if (!duplicate) return;
  a.logger.warn(
    {
      taskId: a.task.id,
      event: "tool.duplicate_call",
      step: use.step,
      first_step: duplicate.firstStep,
      tool: use.name,
      input_hash: duplicate.inputHash,
      agent: a.agent.name,
      prompt_version: a.agent.promptVersion,
    },
    `tool ${use.name} called again with the same input (steps ${duplicate.firstStep} and ${use.step})`,
  );
  a.metrics?.duplicateToolCall(a.labels, use.name);
}

/** Why the model picked its tools, with the loop's state then: the record to read when a prompt goes wrong. */
export function logToolChoice(a: Attempt, step: number, content: readonly ContentBlock[], specs: readonly ToolSpec[], state: Record<string, unknown>): void {
  const uses = toolUses(content);
  const reason = content.find((b) => b.type === "text");
  a.logger.info(
    {
      taskId: a.task.id,
      event: "tool.choice",
      step,
      agent: a.agent.name,
      prompt_version: a.agent.promptVersion,
      tools: uses.map((u) => u.name),
      inputs: uses.map((u) => truncate(JSON.stringify(u.input) ?? "null", 300)),
      candidates: specs.map((s) => s.name),
      reason: reason?.type === "text" ? truncate(reason.text, 500) : undefined,
      state,
    },
    "model chose tools",
  );
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
