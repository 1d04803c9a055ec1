/**
 * The agent loop for one attempt at one task: replay the checkpoints, then
 * alternate model turns (modelTurn.ts) and tool calls (toolDispatch.ts),
 * checkpointing after every model response and every tool result, until the
 * model ends its turn or a budget runs out; then settle the attempt's end.
 *
 * It never writes without the attempt's fencing token, so a zombie's writes are
 * refused by the store; it stops at the next step boundary when `signal` aborts
 * (graceful shutdown, lost lease).
 */
import { ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import type { Attempt, LoopLogger, LoopMetrics, LoopProgress, RunOutcome, StepEvent } from "./attempt";
import type { AgentDefinition } from "./definition";
import { InterceptorChain, progressCounting, type AttemptInterceptor } from "./interceptors";
import type { RetryPolicy } from "./modelRetry";
import { modelTurn } from "./modelTurn";
import { replay, toolUses } from "./replay";
import { buildResult } from "./result";
import { writeTerminal } from "./settle";
import { chooseTier } from "./tierRouting";
import { dispatchTools, logToolChoice } from "./toolDispatch";
import { ToolCallLedger } from "./toolCallLedger";
import type { ContentBlock, TaskRecord } from "../contracts";
import { BudgetExceededError, CallCancelledError, messageOf, ModelBehaviorError } from "../errors";
import type { PriceTable } from "../llm/pricing";
import type { LlmClient } from "../llm/client";
import type { ToolSpec, UserBlock } from "../contracts";
import type { TaskStore } from "../store/types";
import type { ToolRunner } from "../tools/tool";
import { Attr, contextFromTraceparent, inSpan, markFailed } from "../telemetry/spans";

export type { LoopLogger, LoopProgress, RunOutcome, StepEvent } from "./attempt";

export interface LoopDeps {
  store: Pick<TaskStore, "listSteps" | "appendStep" | "finishTask">;
  llm: LlmClient;
  tools: ToolRunner;
  toolSpecs(agent: AgentDefinition): Promise<ToolSpec[]>;
  prices: PriceTable;
  logger: LoopLogger;
  retry?: Partial<RetryPolicy>;
  /** Process-wide interceptors (the planner's events and metrics); they run after the attempt's own progress counting. */
  interceptors?: readonly AttemptInterceptor[];
  /** Told of each checkpoint, after every interceptor: the chain's last link. */
  onStep?(event: StepEvent): void;
  /** The planner's metrics recorded inside the loop; optional (unit tests). */
  metrics?: LoopMetrics;
}

export interface RunInput {
  task: TaskRecord;
  fence: number;
  agent: AgentDefinition;
  /** Step budget when the agent sets none. */
  defaultMaxSteps: number;
  signal: AbortSignal;
  /** Aborts the model and tool calls in flight; the attempt then ends interrupted, as at a step boundary. @default never */
  callSignal?: AbortSignal;
  /** The wake-up's trace context: the attempt span's parent when the task row holds none. */
  traceparent?: string;
  /** Kept current by the loop, earlier attempts' checkpoints included: the caller's per-task metrics, even when the attempt throws. */
  progress?: LoopProgress;
  /** This attempt's own interceptors (its lease check), after the process-wide ones. */
  interceptors?: readonly AttemptInterceptor[];
  /**
   * Ends the attempt in the store once the loop has an outcome, inside the attempt's span.
   * @default the terminal write alone: succeeded and failed finish the task, interrupted leaves it as it is
   */
  settle?(outcome: RunOutcome): Promise<unknown>;
}

/**
 * One attempt, traced: an `invoke_agent {agent}` span (clawfleet.attempt) in the
 * task's own trace, whichever planner runs it and however often the task resumed.
 */
export async function runLoop(deps: LoopDeps, run: RunInput): Promise<RunOutcome> {
  const { task, agent } = run;
  const attempt = openAttempt(deps, run, run.progress ?? { steps: 0, toolCalls: 0 });
  const settle = (outcome: RunOutcome) => (run.settle ? run.settle(outcome) : writeTerminal(deps.store, task.id, run.fence, outcome));
  const attributes = {
    [Attr.OPERATION]: "invoke_agent",
    [Attr.AGENT_NAME]: agent.name,
    [Attr.CONVERSATION_ID]: task.id,
    [Attr.TASK_ID]: task.id,
    [Attr.PROMPT_VERSION]: agent.promptVersion,
    [Attr.ATTEMPT]: task.attempts,
    [Attr.RESUMED_AT_STEP]: task.steps + 1,
  };
  const parent = contextFromTraceparent(task.trace_context ?? run.traceparent, ROOT_CONTEXT);
  return inSpan(`invoke_agent ${agent.name}`, { kind: SpanKind.INTERNAL, attributes }, parent, async (span) => {
    const outcome = await runAttempt(attempt, deps, agent.maxSteps ?? run.defaultMaxSteps).catch((err: unknown) => cutShort(err, attempt));
    await settle(outcome);
    span.setAttribute(Attr.OUTCOME, outcome.kind);
    if (outcome.kind === "failed") markFailed(span, outcome.error.type, outcome.error.message);
    return outcome;
  });
}

/** The attempt as its steps see it: its calls and checkpoints pass through one interceptor chain. */
function openAttempt(deps: LoopDeps, run: RunInput, progress: LoopProgress): Attempt {
  const { task, agent, fence, signal } = run;
  const callSignal = run.callSignal ?? new AbortController().signal;
  const { store, prices, logger, metrics } = deps;
  const labels = { agent: agent.name, prompt_version: agent.promptVersion };
  const chain = new InterceptorChain([
    progressCounting(progress, labels, metrics),
    ...(deps.interceptors ?? []),
    ...(run.interceptors ?? []),
    { name: "listeners", stepCheckpointed: (e) => deps.onStep?.(e), rateLimitWaited: (s, req) => deps.retry?.onRateLimitWait?.(s, req) },
  ]);
  const { stepCheckpointed, rateLimitWaited } = chain;
  const [llm, tools] = [chain.llm(deps.llm), chain.tools(deps.tools)];
  const retry = { ...deps.retry, onRateLimitWait: rateLimitWaited };
  return { task, fence, agent, labels, signal, callSignal, store, llm, tools, prices, retry, logger, metrics, progress, stepCheckpointed };
}

/**
 * A call cut short by the attempt's call signal ends the attempt as a stop at a step boundary would: what was
 * checkpointed stays, the call is made again by whoever resumes the task. Any other error is the attempt's.
 */
function cutShort(err: unknown, a: Attempt): RunOutcome {
  if (a.callSignal.aborted && (err === a.callSignal.reason || err instanceof CallCancelledError)) {
    a.logger.info({ taskId: a.task.id, event: "task.calls_aborted", err: messageOf(err) }, "calls in flight aborted; the attempt ends here");
    return { kind: "interrupted", reason: err };
  }
  throw err;
}

async function runAttempt(a: Attempt, deps: Pick<LoopDeps, "toolSpecs">, maxSteps: number): Promise<RunOutcome> {
  const { task, agent, signal } = a;
  const stored = await a.store.listSteps(task.id);
  // Rebuilt from the checkpoints on every attempt: a resumed task reports no call twice.
  const ledger = ToolCallLedger.fromCheckpoints(stored);
  const toolParents = new Map<number, string>();
  a.progress.steps = stored.length;
  a.progress.toolCalls = ledger.count;
  // Tiered agents classify first (step 1) and run on the tier that picks; others run on their default tier.
  const choice = await chooseTier(a, stored);
  if (choice === "interrupted") return { kind: "interrupted", reason: signal.reason };
  const tierName = choice.tier;
  const tier = agent.tiers[tierName];
  if (!tier) throw new ModelBehaviorError(`agent ${agent.name} has no tier ${tierName}`);

  const state = replay(task.input, stored, choice.firstStep);
  const specs = await deps.toolSpecs(agent);
  let usedTokens = task.usage.input_tokens + task.usage.output_tokens + choice.tokens;
  if (state.llmSteps + state.toolSteps > 0) {
    a.logger.info({ taskId: task.id, event: "task.resumed", step: state.nextStep, attempt: task.attempts }, "resuming from checkpoint");
    a.metrics?.taskResumed(a.labels);
  }

  for (;;) {
    if (signal.aborted) return { kind: "interrupted", reason: signal.reason };

    if (state.pending.length > 0) {
      const results = await dispatchTools(a, state.pending, ledger, toolParents);
      const blocks = new Map<number, UserBlock>([...state.doneResults, ...results]);
      state.messages.push({
        role: "user",
        content: [...blocks.entries()].sort(([x], [y]) => x - y).map(([, b]) => b),
      });
      state.pending = [];
      state.doneResults = new Map();
      if (signal.aborted) return { kind: "interrupted", reason: signal.reason };
      continue;
    }

    if (state.lastLlm) {
      const { content, stop_reason } = state.lastLlm;
      if (stop_reason === "max_tokens") return failedBy(new ModelBehaviorError(`the model's answer was cut off at max_tokens (${tier.max_tokens})`));
      if (stop_reason === "refusal") return failedBy(new ModelBehaviorError("the model refused the task"));
      return { kind: "succeeded", result: buildResult(content, agent.resultFormat) };
    }

    if (state.nextStep > maxSteps) return failedBy(new BudgetExceededError(`step budget of ${maxSteps} spent before the agent finished`));
    if (agent.maxTokens !== undefined && usedTokens >= agent.maxTokens) {
      return failedBy(new BudgetExceededError(`token budget of ${agent.maxTokens} spent before the agent finished`));
    }

    const step = state.nextStep;
    const { response, usage } = await modelTurn(a, { step, tierName, tier, system: agent.systemPrompt, messages: state.messages, tools: specs });
    usedTokens += usage.input_tokens + usage.output_tokens;
    const content: ContentBlock[] = response.content;
    state.messages.push({ role: "assistant", content });
    state.llmSteps++;
    const uses = toolUses(content);
    state.nextStep = step + 1 + uses.length;
    if (uses.length === 0) {
      state.lastLlm = { content, stop_reason: response.stop_reason };
      continue;
    }
    state.pending = uses.map((u, i) => ({ step: step + 1 + i, id: u.id, name: u.name, input: u.input }));
    state.lastLlm = null;
    // The model turn that asked for the tools is their spans' parent.
    if (response.traceparent !== undefined) for (const p of state.pending) toolParents.set(p.step, response.traceparent);
    logToolChoice(a, step, content, specs, {
      attempt: task.attempts,
      tier: tierName,
      llm_steps: state.llmSteps,
      tool_calls: ledger.count,
      used_tokens: usedTokens,
      max_steps: maxSteps,
      stop_reason: response.stop_reason,
    });
  }
}

function failedBy(err: Error & { errorType?: string }): RunOutcome {
  return { kind: "failed", error: { type: err.errorType ?? "internal_error", message: err.message } };
}
