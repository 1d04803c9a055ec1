/**
 * Rebuilds a task's conversation from its checkpoints. Checkpoints are deltas:
 * an LLM step stores the assistant message's content, a tool step stores one
 * tool result. Step numbers are assigned deterministically (an LLM step `s` with
 * k tool_use blocks owns steps s+1 … s+k), so a resumed task knows exactly which
 * tool calls were already made and which are still owed.
 */
import { CHECKPOINT_SCHEMA_VERSION, type ContentBlock, type StepRecord, type ToolStepData } from "../contracts";
import { CheckpointTooNewError } from "../errors";
import type { MessageParam, UserBlock } from "../contracts";

export interface PendingToolUse {
  step: number;
  id: string;
  name: string;
  input: unknown;
}

export interface ReplayState {
  messages: MessageParam[];
  /** Number the next step (LLM or tool) gets. */
  nextStep: number;
  /** tool_use blocks of the last LLM step that have no checkpointed result yet. */
  pending: PendingToolUse[];
  /** Results already checkpointed for the interrupted turn, by step, so the turn's user message keeps call order. */
  doneResults: Map<number, UserBlock>;
  /** The last LLM step, when no tool results are owed after it. */
  lastLlm: { content: ContentBlock[]; stop_reason: string | null } | null;
  llmSteps: number;
  toolSteps: number;
}

export class CheckpointFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointFormatError";
  }
}

/** The first user message: a string input as it is, an object as JSON. */
export function initialUserMessage(input: unknown): MessageParam {
  const text = typeof input === "string" ? input : JSON.stringify(input);
  return { role: "user", content: text };
}

export function toolResultBlock(toolUseId: string, data: Pick<ToolStepData, "ok" | "output">): UserBlock {
  const content = typeof data.output === "string" ? data.output : JSON.stringify(data.output ?? null);
  return { type: "tool_result", tool_use_id: toolUseId, content, ...(data.ok ? {} : { is_error: true }) };
}

/** The tool calls a model turn asked for, in the order it asked. */
export function toolUses(content: readonly ContentBlock[]): Array<Extract<ContentBlock, { type: "tool_use" }>> {
  return content.filter((b): b is Extract<ContentBlock, { type: "tool_use" }> => b.type === "tool_use");
}

/**
 * Upgrades a stored checkpoint to the current format. Version 1 is current; older ones would be mapped here.
 * A newer one is a rolling deploy caught mid-way: `CheckpointTooNewError` hands the task on to a newer planner
 * (released, the attempt not counted) instead of failing a task that is fine.
 */
export function upgradeStep(step: StepRecord): StepRecord {
  if (step.schema_version > CHECKPOINT_SCHEMA_VERSION) {
    throw new CheckpointTooNewError(
      `checkpoint ${step.task_id}#${step.step} has format version ${step.schema_version}, newer than this build understands (${CHECKPOINT_SCHEMA_VERSION}); run a newer Clawfleet`,
    );
  }
  return step;
}

/** `firstStep`: where the agent's conversation starts (2 after a tiered agent's classification step). */
export function replay(input: unknown, stored: readonly StepRecord[], firstStep = 1): ReplayState {
  const messages: MessageParam[] = [initialUserMessage(input)];
  const byStep = new Map<number, StepRecord>();
  for (const s of stored) byStep.set(s.step, upgradeStep(s));

  let step = firstStep;
  let llmSteps = 0;
  let toolSteps = 0;
  let lastLlm: ReplayState["lastLlm"] = null;
  const maxStored = stored.reduce((m, s) => Math.max(m, s.step), 0);

  while (step <= maxStored) {
    const rec = byStep.get(step);
    if (!rec) throw new CheckpointFormatError(`checkpoint gap: step ${step} missing before step ${maxStored}`);
    if (rec.kind !== "llm") throw new CheckpointFormatError(`step ${step} should be an LLM step, found a ${rec.kind} step`);
    llmSteps++;
    const content = rec.data.content;
    messages.push({ role: "assistant", content });
    const uses = toolUses(content);
    const results = new Map<number, UserBlock>();
    const pending: PendingToolUse[] = [];
    uses.forEach((use, i) => {
      const toolStep = step + 1 + i;
      const tr = byStep.get(toolStep);
      if (tr === undefined) {
        pending.push({ step: toolStep, id: use.id, name: use.name, input: use.input });
        return;
      }
      if (tr.kind !== "tool" || tr.data.tool_use_id !== use.id) {
        throw new CheckpointFormatError(`step ${toolStep} should be the result of tool call ${use.id}`);
      }
      toolSteps++;
      results.set(toolStep, toolResultBlock(use.id, tr.data));
    });
    const next = step + 1 + uses.length;
    if (pending.length > 0) {
      if (next <= maxStored) throw new CheckpointFormatError(`tool results owed before step ${next}`);
      return { messages, nextStep: next, pending, doneResults: results, lastLlm: null, llmSteps, toolSteps };
    }
    if (uses.length > 0) {
      messages.push({ role: "user", content: [...results.values()] });
      lastLlm = null;
    } else {
      lastLlm = { content, stop_reason: rec.data.stop_reason };
    }
    step = next;
  }
  return { messages, nextStep: step, pending: [], doneResults: new Map(), lastLlm, llmSteps, toolSteps };
}
