/**
 * One model turn, the same for the agent's own steps and for a tiered agent's
 * classification: ask the model (retrying passing failures), price the answer,
 * checkpoint it under the attempt's fence, then tell the interceptor chain. A
 * turn is made once: after its checkpoint, a resumed task reads it back instead.
 */
import type { Attempt } from "./attempt";
import type { Tier } from "./definition";
import { callModelWithRetry } from "./modelRetry";
import type { Usage } from "../contracts";
import type { CompleteResponse, MessageParam, ToolSpec } from "../contracts";

export interface TurnRequest {
  step: number;
  /** The tier's name in the agent's definition, and the tier itself. */
  tierName: string;
  tier: Tier;
  system: string;
  messages: MessageParam[];
  tools: ToolSpec[];
}

export interface Turn {
  response: CompleteResponse;
  usage: Usage;
}

export async function modelTurn(a: Attempt, turn: TurnRequest): Promise<Turn> {
  const { task, fence, agent } = a;
  const { step, tierName, tier } = turn;
  const response = await callModelWithRetry(
    a.llm,
    {
      taskId: task.id,
      agent: agent.name,
      promptVersion: agent.promptVersion,
      step,
      tier: tierName,
      model: tier.model,
      maxTokens: tier.max_tokens,
      priority: task.priority,
      system: turn.system,
      messages: turn.messages,
      tools: turn.tools,
    },
    a.signal,
    a.retry,
    a.callSignal,
  );
  const usage: Usage = a.prices.usageOf(response.model, response.usage);
  await a.store.appendStep(
    task.id,
    fence,
    {
      kind: "llm",
      step,
      data: {
        model: response.model,
        tier: tierName,
        stop_reason: response.stop_reason,
        usage,
        content: response.content,
        duration_ms: response.duration_ms,
      },
    },
    usage,
  );
  a.stepCheckpointed({ taskId: task.id, step, kind: "llm", model: response.model, usage, duration_ms: response.duration_ms, ...a.labels });
  return { response, usage };
}
