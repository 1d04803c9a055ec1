/**
 * The planner's side of an approval gate. A call of a tool the agent names
 * under `approval.tools` runs only once an operator approved that very call
 * (task, step): the store's record is read when the call is due, on every
 * attempt, so the decision survives any crash. Without one, the attempt ends
 * with the task parked on the call (`awaiting_approval`); once decided, the
 * task is queued again, and the resumed attempt finds the same call pending in
 * its checkpoints (the model is not asked again): approved, it runs verbatim
 * under its own step's idempotency key; rejected, the model gets an error
 * result saying so, checkpointed as the call's step.
 *
 * Calls of the same turn that need no decision are not held back: they run and
 * are checkpointed first, so the task parks with only gated calls owed.
 */
import type { Attempt, RunOutcome } from "../agent/attempt";
import { allows, DEFAULT_APPROVAL_TIMEOUT_SECONDS, type AgentDefinition } from "../agent/definition";
import type { PendingToolUse } from "../agent/replay";
import type { Approval, ToolResult } from "../contracts";
import { InternalError } from "../errors";

/** What a due call may do: run (no gate, or approved), come back rejected without running, or wait. */
export type Gate = { kind: "run"; approval?: Approval } | { kind: "reject"; approval: Approval } | { kind: "wait" };

/** Whether calls of `tool` wait for a decision: named under `approval.tools`, or offered by a server named as `<server>__*`. */
export function needsApproval(agent: Pick<AgentDefinition, "approval">, tool: string): boolean {
  return agent.approval !== undefined && allows({ tools: agent.approval.tools }, tool);
}

/** The gate of one due call, from the store's record of its step. */
export async function gateOf(a: Pick<Attempt, "agent" | "task" | "store">, use: PendingToolUse): Promise<Gate> {
  if (!needsApproval(a.agent, use.name)) return { kind: "run" };
  const approval = await a.store.approvalOf(a.task.id, use.step);
  if (approval === null) return { kind: "wait" };
  // The record is keyed by step, and a step's call is fixed by its checkpointed model turn: another id is corruption.
  if (approval.tool_use_id !== use.id) {
    throw new InternalError(`the approval of step ${use.step} of task ${a.task.id} names call ${approval.tool_use_id}, not ${use.id}`, { taskId: a.task.id, step: use.step });
  }
  if (approval.decision === "approve") return { kind: "run", approval };
  if (approval.decision === "reject") return { kind: "reject", approval };
  // Undecided, or timed out before a redrive put the task back: asked anew.
  return { kind: "wait" };
}

/** What the model is told of a rejected call: an error result, checkpointed as the call's step. */
export function rejectedResult(approval: Pick<Approval, "reason">): ToolResult {
  const reason = approval.reason?.trim();
  return { ok: false, output: `rejected by an operator${reason ? `: ${reason}` : ""}`, duration_ms: 0 };
}

/**
 * After a turn's calls were dispatched: the first one left without a result is the call the task parks on.
 * Undefined when every call has its result.
 */
export function awaitingApproval(
  a: Pick<Attempt, "agent">,
  pending: readonly PendingToolUse[],
  results: ReadonlyMap<number, unknown>,
): Extract<RunOutcome, { kind: "awaiting_approval" }> | undefined {
  const owed = pending.find((use) => !results.has(use.step));
  if (owed === undefined) return undefined;
  return {
    kind: "awaiting_approval",
    approval: {
      step: owed.step,
      tool_use_id: owed.id,
      tool: owed.name,
      input: owed.input,
      timeout_seconds: a.agent.approval?.timeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    },
  };
}
