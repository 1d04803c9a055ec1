/**
 * One model turn, the same for the agent's own steps and for a tiered agent's
 * classification: reserve its worst case against the task's budgets (a turn
 * that could overshoot one is not made: BudgetExceededError), ask the model
 * (retrying passing failures), price the answer, checkpoint it under the
 * attempt's fence, then tell the interceptor chain. A turn is made once: after
 * its checkpoint, a resumed task reads it back instead.
 *
 * `askModel` makes the turn and leaves its checkpoint pending; `commitTurn`
 * writes it. The loop holds back the checkpoint of an answer that ends the
 * attempt, to write it with the task's terminal write (runLoop.ts).
 */
import type { Attempt, PendingCheckpoint, StepEvent } from "./attempt";
import type { Premarks } from "./premark";
import type { Tier } from "./definition";
import { callModelWithRetry } from "./modelRetry";
import { isMissingAction } from "./settle";
import type { BudgetName, Usage } from "../contracts";
import type { CompleteResponse, MessageParam, ToolSpec } from "../contracts";

export interface TurnRequest {
  step: number;
  /** The tier's name in the agent's definition, and the tier itself. */
  tierName: string;
  tier: Tier;
  system: string;
  messages: MessageParam[];
  tools: ToolSpec[];
  /**
   * The wrap-up turn of `on_exhausted: finish`, after `budget` ran out: the one call allowed past the budgets,
   * so nothing is reserved; `maxTokens` replaces the tier's; a tool call in its answer is dropped (it is
   * offered none), and its checkpoint is marked with the budget, so a resumed task knows it for the wrap-up.
   */
  wrapUp?: { budget: BudgetName; maxTokens: number };
}

export interface Turn {
  response: CompleteResponse;
  usage: Usage;
}

/** A turn answered and priced, its checkpoint not written yet. */
export interface AnsweredTurn extends Turn {
  checkpoint: PendingCheckpoint;
}

/** A model turn, checkpointed under the attempt's fence and announced to the interceptor chain. */
export async function modelTurn(a: Attempt, turn: TurnRequest): Promise<Turn> {
  return commitTurn(a, await askModel(a, turn));
}

/** Writes an answered turn's checkpoint on its own, then tells the interceptor chain. */
export async function commitTurn(a: Attempt, turn: AnsweredTurn, premarks?: Premarks): Promise<Turn> {
  const { checkpoint } = turn;
  // The side-effect calls this answer asks for are marked started in the same commit (src/agent/premark.ts).
  const marks = premarks?.marksFor(a, checkpoint.step.step, turn.response.content) ?? [];
  const answer = await a.store.appendStep(a.task.id, a.fence, checkpoint.step, checkpoint.usage, marks);
  premarks?.committed(marks, answer);
  checkpoint.announce();
  return { response: turn.response, usage: turn.usage };
}

/** A checkpoint to write: its step, what it spent (a model turn's), and its announcement once stored. */
export type StepToStore = Pick<PendingCheckpoint, "step" | "announce"> & { usage?: Usage | undefined };

/**
 * Writes an answered turn's checkpoint and those of the calls it asked for (their results), in one commit
 * (`appendSteps`), then tells the interceptor chain of each, in step order. A store without `appendSteps`, or a
 * checkpoint service that predates it, gets them one by one, in order.
 */
export async function commitTurnWith(a: Attempt, turn: AnsweredTurn, results: readonly StepToStore[]): Promise<void> {
  const all: StepToStore[] = [turn.checkpoint, ...[...results].sort((x, y) => x.step.step - y.step.step)];
  const { store } = a;
  const oneByOne = async () => {
    for (const c of all) await store.appendStep(a.task.id, a.fence, c.step, c.usage);
  };
  if (store.appendSteps === undefined) await oneByOne();
  else {
    try {
      await store.appendSteps(a.task.id, a.fence, all.map((c) => ({ step: c.step, ...(c.usage ? { usageDelta: c.usage } : {}) })));
    } catch (err) {
      if (!isMissingAction(err, "appendSteps")) throw err;
      await oneByOne();
    }
  }
  // Each is stored: each is announced, even when a listener fails on another (the first failure is thrown after).
  let failed: { err: unknown } | undefined;
  for (const c of all) {
    try {
      c.announce();
    } catch (err) {
      failed ??= { err };
    }
  }
  if (failed) throw failed.err;
}

/**
 * A checkpoint's write left on its way, to be waited for later, or not at all when the attempt ends on
 * another error: its failure is handled from the start, never an unhandled rejection meanwhile.
 */
export function onItsWay(write: Promise<unknown>): Promise<void> {
  const settled = write.then(() => undefined);
  settled.catch(() => undefined);
  return settled;
}

/** The turn itself, up to its checkpoint: reserved, asked, priced; `checkpoint` is what `commitTurn` writes. */
export async function askModel(a: Attempt, turn: TurnRequest): Promise<AnsweredTurn> {
  const { task, agent } = a;
  const { step, tierName, tier, wrapUp } = turn;
  const maxTokens = wrapUp?.maxTokens ?? tier.max_tokens;
  const shape = { model: tier.model, maxTokens, system: turn.system, messages: turn.messages, tools: turn.tools };
  const reservation = wrapUp ? a.budget?.estimateOnly(shape) : a.budget?.reserve(shape);
  const answer = await callModelWithRetry(
    a.llm,
    {
      taskId: task.id,
      agent: agent.name,
      promptVersion: agent.promptVersion,
      step,
      tier: tierName,
      model: tier.model,
      maxTokens,
      priority: task.priority,
      system: turn.system,
      messages: turn.messages,
      tools: turn.tools,
      // The answer is the same; its text is also published as it comes, for the task's live stream.
      ...(agent.stream ? { stream: { tenant: task.tenant } } : {}),
    },
    a.signal,
    a.retry,
    a.callSignal,
  );
  const response = wrapUp ? { ...answer, content: answer.content.filter((b) => b.type !== "tool_use") } : answer;
  const usage: Usage = a.prices.usageOf(response.model, response.usage);
  if (reservation) a.budget?.settle(reservation, usage);
  const event: StepEvent = { taskId: task.id, step, kind: "llm", model: response.model, usage, duration_ms: response.duration_ms, ...a.labels };
  const checkpoint: PendingCheckpoint = {
    step: {
      kind: "llm",
      step,
      data: {
        model: response.model,
        tier: tierName,
        stop_reason: response.stop_reason,
        usage,
        content: response.content,
        duration_ms: response.duration_ms,
        ...(wrapUp ? { budget_exhausted: wrapUp.budget } : {}),
      },
    },
    usage,
    announce: () => a.stepCheckpointed(event),
  };
  return { response, usage, checkpoint };
}
