/**
 * Tiered routing, the first step of an agent with a `router`: the task is
 * classified on the cheap tier; a task labelled simple finishes on that tier, any
 * other escalates to the agent's default (reasoning) tier.
 *
 * The classification is an LLM step like any other: checkpointed as step 1
 * (kind `llm`, the classify tier), counted in the task's usage and cost, and
 * never made twice: a resumed task reads its label back from the checkpoint. It
 * is not part of the agent's conversation, which starts at step 2. Its checkpoint
 * is handed back on its way (`stored`): the loop asks the first turn meanwhile.
 */
import type { Attempt } from "./attempt";
import type { AgentDefinition } from "./definition";
import { askModel, commitTurn, onItsWay } from "./modelTurn";
import { initialUserMessage } from "./replay";
import type { ContentBlock, StepRecord } from "../contracts";
import { ModelBehaviorError } from "../errors";

export interface TierChoice {
  /** The tier the agent's own steps run on. */
  tier: string;
  /** Where the agent's conversation starts: 2 after a classification step, else 1. */
  firstStep: number;
  /** Tokens the classification spent in this attempt, for the token budget. */
  tokens: number;
  /** The classification's checkpoint, made in this attempt, while it is written (modelTurn.ts `onItsWay`). */
  stored?: Promise<void>;
}

export function classificationPrompt(agent: AgentDefinition, simpleLabel: string): string {
  return [
    `You triage tasks for the "${agent.name}" agent${agent.description ? ` (${agent.description})` : ""} before it runs.`,
    agent.router?.instruction ?? "",
    `Do not do the task. Answer with one JSON object and nothing else: {"complexity": "${simpleLabel}"} or {"complexity": "complex"}.`,
  ]
    .filter((l) => l !== "")
    .join("\n\n");
}

/** The label in a classification answer, or undefined when the answer holds none. */
export function labelOf(content: readonly ContentBlock[]): string | undefined {
  const text = content.flatMap((b) => (b.type === "text" ? [b.text] : [])).join("\n");
  const json = /\{[\s\S]*\}/.exec(text)?.[0];
  if (json === undefined) return undefined;
  try {
    const v = JSON.parse(json) as { complexity?: unknown };
    return typeof v.complexity === "string" ? v.complexity : undefined;
  } catch {
    return undefined;
  }
}

const isClassification = (s: StepRecord | undefined, classifyTier: string): s is Extract<StepRecord, { kind: "llm" }> =>
  s?.kind === "llm" && s.data.tier === classifyTier && !s.data.content.some((b) => b.type === "tool_use");

/**
 * Picks the tier for a task: classifies it (and checkpoints that as step 1) the
 * first time, reads the checkpoint on resume. "interrupted" when the attempt's
 * signal aborted before the classification.
 */
export async function chooseTier(a: Attempt, stored: readonly StepRecord[]): Promise<TierChoice | "interrupted"> {
  const { task, agent } = a;
  const router = agent.router;
  if (!router) return { tier: agent.defaultTier, firstStep: 1, tokens: 0 };
  const decide = (content: readonly ContentBlock[]) => (labelOf(content) === router.simpleLabel ? router.classifyTier : agent.defaultTier);

  const first = stored.find((s) => s.step === 1);
  if (first) {
    // A task checkpointed before its agent had a router keeps running as it started.
    if (!isClassification(first, router.classifyTier)) return { tier: agent.defaultTier, firstStep: 1, tokens: 0 };
    return { tier: decide(first.data.content), firstStep: 2, tokens: 0 };
  }
  if (a.signal.aborted) return "interrupted";

  const tier = agent.tiers[router.classifyTier];
  if (!tier) throw new ModelBehaviorError(`agent ${agent.name} has no tier ${router.classifyTier}`);
  const turn = await askModel(a, {
    step: 1,
    tierName: router.classifyTier,
    tier,
    system: classificationPrompt(agent, router.simpleLabel),
    messages: [initialUserMessage(task.input)],
    tools: [],
  });
  const written = onItsWay(commitTurn(a, turn));
  const { response, usage } = turn;
  const chosen = decide(response.content);
  a.logger.info(
    { taskId: task.id, event: "task.classified", label: labelOf(response.content) ?? null, tier: chosen, model: agent.tiers[chosen]?.model },
    "task classified",
  );
  return { tier: chosen, firstStep: 2, tokens: usage.input_tokens + usage.output_tokens, stored: written };
}
