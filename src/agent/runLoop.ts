/**
 * The agent loop for one attempt at one task: replay the checkpoints, then
 * alternate model turns and tool calls, checkpointing after every model response
 * and every tool result, until the model ends its turn or a budget runs out.
 *
 * It never writes without the attempt's fencing token, so a zombie's writes are
 * refused by the store; it stops at the next step boundary when `signal` aborts
 * (graceful shutdown, lost lease).
 */
import { context, ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import type { AgentDefinition } from "./definition";
import { replay, toolResultBlock, type PendingToolUse } from "./replay";
import { buildResult } from "./result";
import { callModelWithRetry, type RetryPolicy } from "./modelRetry";
import { chooseTier } from "./tierRouting";
import { ToolCallLedger } from "./toolCallLedger";
import { type ContentBlock, type TaskRecord, type Usage } from "../domain";
import { BudgetExceededError, ModelBehaviorError } from "../errors";
import type { PriceTable } from "../llm/pricing";
import type { LlmClient, ToolSpec, UserBlock } from "../llm/types";
import type { TaskStore } from "../store/types";
import type { ToolRunner } from "../tools/types";
import type { Metrics } from "../telemetry/metrics";
import { Attr, contextFromTraceparent, inSpan, markFailed } from "../telemetry/spans";

export interface LoopLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface LoopDeps {
  store: Pick<TaskStore, "listSteps" | "appendStep" | "finishTask">;
  llm: LlmClient;
  tools: ToolRunner;
  toolSpecs(agent: AgentDefinition): Promise<ToolSpec[]>;
  prices: PriceTable;
  logger: LoopLogger;
  retry?: Partial<RetryPolicy>;
  /** Called after each checkpoint (events, metrics). */
  onStep?(event: StepEvent): void;
  /** The planner's metrics recorded inside the loop; optional (unit tests). */
  metrics?: Pick<Metrics, "taskResumed" | "duplicateToolCall" | "rateLimitWait">;
}

export interface StepEvent {
  taskId: string;
  step: number;
  kind: "llm" | "tool";
  tool?: string;
  ok?: boolean;
  model?: string;
  usage?: Usage;
  duration_ms: number;
  /** Set by runLoop on every event it passes on, so listeners can label by agent and prompt version. */
  agent?: string;
  prompt_version?: string;
}

export interface RunInput {
  task: TaskRecord;
  fence: number;
  agent: AgentDefinition;
  /** Step budget when the agent sets none. */
  defaultMaxSteps: number;
  signal: AbortSignal;
  /** The wake-up's trace context: the attempt span's parent when the task row holds none. */
  traceparent?: string;
  /** Kept current by the loop, earlier attempts' checkpoints included: the caller's per-task metrics, even when the attempt throws. */
  progress?: LoopProgress;
}

export interface LoopProgress {
  steps: number;
  toolCalls: number;
}

export type RunOutcome =
  | { kind: "succeeded"; result: unknown }
  | { kind: "failed"; error: { type: string; message: string } }
  /** Stopped at a step boundary because `signal` aborted; the task is resumable. */
  | { kind: "interrupted"; reason: unknown };

/**
 * One attempt, traced: an `invoke_agent {agent}` span (clawfleet.attempt) in the
 * task's own trace, whichever planner runs it and however often the task resumed.
 */
export async function runLoop(deps: LoopDeps, run: RunInput): Promise<RunOutcome> {
  const { task, agent } = run;
  const labels = { agent: agent.name, prompt_version: agent.promptVersion };
  const progress = run.progress ?? { steps: 0, toolCalls: 0 };
  const metrics = deps.metrics;
  const traced: LoopDeps = {
    ...deps,
    onStep: (e) => {
      progress.steps++;
      if (e.kind === "tool") progress.toolCalls++;
      deps.onStep?.({ ...e, ...labels });
    },
    retry: {
      ...deps.retry,
      onRateLimitWait: (seconds, req) => {
        deps.retry?.onRateLimitWait?.(seconds, req);
        metrics?.rateLimitWait({ ...labels, model: req.model }, "planner_backoff", seconds);
      },
    },
  };
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
    const outcome = await runAttempt(traced, { ...run, progress });
    span.setAttribute(Attr.OUTCOME, outcome.kind);
    if (outcome.kind === "failed") markFailed(span, outcome.error.type, outcome.error.message);
    return outcome;
  });
}

async function runAttempt(deps: LoopDeps, run: RunInput & { progress: LoopProgress }): Promise<RunOutcome> {
  const { task, fence, agent, signal } = run;
  const maxSteps = agent.maxSteps ?? run.defaultMaxSteps;
  const stored = await deps.store.listSteps(task.id);
  // Rebuilt from the checkpoints on every attempt: a resumed task reports no call twice.
  const ledger = ToolCallLedger.fromCheckpoints(stored);
  const toolParents = new Map<number, string>();
  run.progress.steps = stored.length;
  run.progress.toolCalls = ledger.count;
  // Tiered agents classify first (step 1) and run on the tier that picks; others run on their default tier.
  const choice = await chooseTier(deps, run, stored);
  if (choice === "interrupted") return { kind: "interrupted", reason: signal.reason };
  const tierName = choice.tier;
  const tier = agent.tiers[tierName];
  if (!tier) throw new ModelBehaviorError(`agent ${agent.name} has no tier ${tierName}`);

  const state = replay(task.input, stored, choice.firstStep);
  const specs = await deps.toolSpecs(agent);
  let usedTokens = task.usage.input_tokens + task.usage.output_tokens + choice.tokens;
  if (state.llmSteps + state.toolSteps > 0) {
    deps.logger.info({ taskId: task.id, event: "task.resumed", step: state.nextStep, attempt: task.attempts }, "resuming from checkpoint");
    deps.metrics?.taskResumed({ agent: agent.name, prompt_version: agent.promptVersion });
  }

  const finish = async (outcome: RunOutcome & { kind: "succeeded" | "failed" }): Promise<RunOutcome> => {
    await deps.store.finishTask(
      task.id,
      fence,
      outcome.kind === "succeeded" ? { status: "succeeded", result: outcome.result } : { status: "failed", error: outcome.error },
    );
    return outcome;
  };
  const fail = (err: Error & { errorType?: string }) =>
    finish({ kind: "failed", error: { type: err.errorType ?? "internal_error", message: err.message } });

  for (;;) {
    if (signal.aborted) return { kind: "interrupted", reason: signal.reason };

    if (state.pending.length > 0) {
      const results = await runPendingTools(deps, run, state.pending, ledger, toolParents);
      const blocks = new Map<number, UserBlock>([...state.doneResults, ...results]);
      state.messages.push({
        role: "user",
        content: [...blocks.entries()].sort(([a], [b]) => a - b).map(([, b]) => b),
      });
      state.pending = [];
      state.doneResults = new Map();
      if (signal.aborted) return { kind: "interrupted", reason: signal.reason };
      continue;
    }

    if (state.lastLlm) {
      const { content, stop_reason } = state.lastLlm;
      if (stop_reason === "max_tokens") {
        return fail(new ModelBehaviorError(`the model's answer was cut off at max_tokens (${tier.max_tokens})`));
      }
      if (stop_reason === "refusal") return fail(new ModelBehaviorError("the model refused the task"));
      return finish({ kind: "succeeded", result: buildResult(content, agent.resultFormat) });
    }

    if (state.nextStep > maxSteps) {
      return fail(new BudgetExceededError(`step budget of ${maxSteps} spent before the agent finished`));
    }
    if (agent.maxTokens !== undefined && usedTokens >= agent.maxTokens) {
      return fail(new BudgetExceededError(`token budget of ${agent.maxTokens} spent before the agent finished`));
    }

    const step = state.nextStep;
    const response = await callModelWithRetry(
      deps.llm,
      {
        taskId: task.id,
        agent: agent.name,
        promptVersion: agent.promptVersion,
        step,
        tier: tierName,
        model: tier.model,
        maxTokens: tier.max_tokens,
        priority: task.priority,
        system: agent.systemPrompt,
        messages: state.messages,
        tools: specs,
      },
      signal,
      deps.retry,
    );
    const usage: Usage = deps.prices.usageOf(response.model, response.usage);
    const content: ContentBlock[] = response.content;
    await deps.store.appendStep(
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
          content,
          duration_ms: response.duration_ms,
        },
      },
      usage,
    );
    usedTokens += usage.input_tokens + usage.output_tokens;
    deps.onStep?.({ taskId: task.id, step, kind: "llm", model: response.model, usage, duration_ms: response.duration_ms });

    state.messages.push({ role: "assistant", content });
    state.llmSteps++;
    const uses = content.filter((b): b is Extract<ContentBlock, { type: "tool_use" }> => b.type === "tool_use");
    state.nextStep = step + 1 + uses.length;
    if (uses.length > 0) {
      state.pending = uses.map((u, i) => ({ step: step + 1 + i, id: u.id, name: u.name, input: u.input }));
      state.lastLlm = null;
      // The model turn that asked for the tools is their spans' parent.
      if (response.traceparent !== undefined) for (const p of state.pending) toolParents.set(p.step, response.traceparent);
      const reason = content.find((b) => b.type === "text");
      deps.logger.info(
        {
          taskId: task.id,
          event: "tool.choice",
          step,
          agent: agent.name,
          prompt_version: agent.promptVersion,
          tools: uses.map((u) => u.name),
          inputs: uses.map((u) => cut(JSON.stringify(u.input) ?? "null", 300)),
          candidates: specs.map((s) => s.name),
          reason: reason?.type === "text" ? cut(reason.text, 500) : undefined,
          state: {
            attempt: task.attempts,
            tier: tierName,
            llm_steps: state.llmSteps,
            tool_calls: ledger.count,
            used_tokens: usedTokens,
            max_steps: maxSteps,
            stop_reason: response.stop_reason,
          },
        },
        "model chose tools",
      );
    } else {
      state.lastLlm = { content, stop_reason: response.stop_reason };
    }
  }
}

/**
 * Runs the owed tool calls of one turn concurrently (the model asked for them
 * together) and checkpoints each as it completes. A tool that fails or gets bad
 * input from the model comes back as an `is_error` result for the model to see;
 * only infrastructure errors (retryable) escape to end the attempt.
 */
async function runPendingTools(
  deps: LoopDeps,
  run: RunInput,
  pending: readonly PendingToolUse[],
  ledger: ToolCallLedger,
  parents: ReadonlyMap<number, string>,
): Promise<Map<number, UserBlock>> {
  const { task, fence, agent } = run;
  const out = new Map<number, UserBlock>();
  await Promise.all(
    pending.map(async (use) => {
      const idempotencyKey = `${task.id}:${use.step}`;
      const allowed = agent.tools.includes(use.name);
      const result = allowed
        ? await context.with(contextFromTraceparent(parents.get(use.step), context.active()), () =>
            deps.tools.run({
              taskId: task.id,
              agent: agent.name,
              promptVersion: agent.promptVersion,
              step: use.step,
              tool: use.name,
              toolUseId: use.id,
              input: use.input,
              idempotencyKey,
            }),
          )
        : { ok: false, output: { error: `tool "${use.name}" is not available to agent ${agent.name}` }, duration_ms: 0 };
      await deps.store.appendStep(task.id, fence, {
        kind: "tool",
        step: use.step,
        data: {
          tool: use.name,
          tool_use_id: use.id,
          input: use.input,
          output: result.output,
          ok: result.ok,
          duration_ms: result.duration_ms,
          idempotency_key: idempotencyKey,
        },
      });
      deps.onStep?.({ taskId: task.id, step: use.step, kind: "tool", tool: use.name, ok: result.ok, duration_ms: result.duration_ms });
      const duplicate = ledger.enter(use.name, use.input, use.step);
      if (duplicate) {
        deps.logger.warn(
          {
            taskId: task.id,
            event: "tool.duplicate_call",
            step: use.step,
            first_step: duplicate.firstStep,
            tool: use.name,
            input_hash: duplicate.inputHash,
            agent: agent.name,
            prompt_version: agent.promptVersion,
          },
          `tool ${use.name} called again with the same input (steps ${duplicate.firstStep} and ${use.step})`,
        );
        deps.metrics?.duplicateToolCall({ agent: agent.name, prompt_version: agent.promptVersion }, use.name);
      }
      out.set(use.step, toolResultBlock(use.id, result));
    }),
  );
  return out;
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
