/**
 * The agent loop for one attempt at one task: replay the checkpoints, then
 * alternate model turns (modelTurn.ts) and tool calls (toolDispatch.ts),
 * checkpointing after every model response and every tool result, until the
 * model ends its turn or a budget runs out; then settle the attempt's end.
 * The answer that ends the attempt is checkpointed by the terminal write
 * itself, in the same statement (`endOn`): one commit for the two.
 * Budgets (src/budgets) are the task's own, fixed at submit: each model turn
 * reserves its worst case first, and one that could overshoot is not made; the
 * task then fails (`budget_exceeded`) or, with `on_exhausted: finish`, ends
 * after one wrap-up turn without tools.
 *
 * A turn whose calls all change nothing (tools the executor described without side
 * effects, none gated) is not checkpointed before them: they are made first, and
 * the turn is checkpointed with their results, in one commit, if they are done
 * within `holdTurnMs` (else alone, then the results). A crash before it loses the
 * turn, as a crash during the model call would: whoever resumes asks the model
 * again, and the calls made meanwhile changed nothing.
 *
 * It never writes without the attempt's fencing token, so a zombie's writes are
 * refused by the store; it stops at the next step boundary when `signal` aborts
 * (graceful shutdown, lost lease).
 */
import { ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import type { Attempt, LoopLogger, LoopMetrics, LoopProgress, RunOutcome, StepEvent, TerminalOutcome } from "./attempt";
import type { AgentDefinition, Tier } from "./definition";
import { InterceptorChain, progressCounting, type AttemptInterceptor } from "./interceptors";
import type { RetryPolicy } from "./modelRetry";
import { askModel, commitTurn, modelTurn, type AnsweredTurn, type TurnRequest } from "./modelTurn";
import { replay, toolResultBlock, toolUses, type PendingToolUse, type ReplayState } from "./replay";
import { buildResult } from "./result";
import { reported, writeTerminal } from "./settle";
import { chooseTier, type TierChoice } from "./tierRouting";
import { dispatchTools, logToolChoice } from "./toolDispatch";
import { toolCallKey } from "./premark";
import { awaitingApproval } from "../approvals/gate";
import { ToolCallLedger } from "./toolCallLedger";
import type { BudgetName, ContentBlock, StepRecord, TaskRecord } from "../contracts";
import { BudgetMeter, budgetsOf, exhaustionOf, stepsSpent, tokensSpent, wrapUpMessages, type Exhaustion } from "../budgets";
import { BudgetExceededError, CallCancelledError, messageOf, ModelBehaviorError } from "../errors";
import type { PriceTable } from "../llm/pricing";
import type { InputTokenEstimator } from "../ratelimit";
import type { LlmClient } from "../llm/client";
import type { ToolSpec, UserBlock } from "../contracts";
import type { TaskStore } from "../store/types";
import type { ToolRunner } from "../tools/tool";
import { Attr, contextFromTraceparent, inSpan, markFailed } from "../telemetry/spans";

export type { LoopLogger, LoopProgress, RunOutcome, StepEvent } from "./attempt";

export interface LoopDeps {
  /** `toolCallUnmark`: to give back premarks whose calls were never dispatched (src/agent/premark.ts); without it they stay. */
  store: Pick<TaskStore, "listSteps" | "appendStep" | "finishTask" | "approvalOf" | "awaitApproval"> & Partial<Pick<TaskStore, "toolCallUnmark">>;
  llm: LlmClient;
  tools: ToolRunner;
  toolSpecs(agent: AgentDefinition): Promise<ToolSpec[]>;
  /** The agent's tools the executor described as side effects; undefined: not known, and no call is premarked (src/agent/premark.ts). */
  sideEffectTools?(agent: AgentDefinition): Promise<ReadonlySet<string> | undefined>;
  prices: PriceTable;
  logger: LoopLogger;
  retry?: Partial<RetryPolicy>;
  /** Process-wide interceptors (the planner's events and metrics); they run after the attempt's own progress counting. */
  interceptors?: readonly AttemptInterceptor[];
  /** Told of each checkpoint, after every interceptor: the chain's last link. */
  onStep?(event: StepEvent): void;
  /** The planner's metrics recorded inside the loop; optional (unit tests). */
  metrics?: LoopMetrics;
  /** Prompt-size estimates for budget reservations. @default one per process, calibrated on every call's usage */
  estimator?: InputTokenEstimator;
  /** Wall clock (ms since the epoch) of the wall-time budget. @default Date.now */
  now?: () => number;
  /**
   * How long a model turn whose calls change nothing waits for them, unstored, to be checkpointed with their
   * results; calls that take longer have it checkpointed alone first. @default HOLD_TURN_MS
   */
  holdTurnMs?: number;
}

/**
 * The default of `holdTurnMs`: long enough for a tool in the process or one hop away, short enough that a cancel
 * (which refuses every later write of the attempt) or a crash seldom finds a paid answer unstored.
 */
export const HOLD_TURN_MS = 10;

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
   * Ends the attempt in the store once the loop has an outcome, inside the attempt's span. A succeeded or
   * failed outcome may carry the checkpoint of the answer that ended the attempt: written with the outcome
   * (settle.ts `writeTerminal`), or lost with it.
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
  const settle = (outcome: RunOutcome) => (run.settle ? run.settle(outcome) : writeTerminal(deps.store, task.id, run.fence, outcome, deps.logger));
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
    const maxSteps = attempt.budget.budgets.max_steps ?? run.defaultMaxSteps;
    const outcome = await runAttempt(attempt, deps, maxSteps).catch((err: unknown) => cutShort(err, attempt));
    await settle(outcome);
    span.setAttribute(Attr.OUTCOME, outcome.kind);
    if (outcome.kind === "failed") markFailed(span, outcome.error.type, outcome.error.message);
    return reported(outcome);
  });
}

/** An attempt with its task's budgets. */
type MeteredAttempt = Attempt & { budget: BudgetMeter };

/** The attempt as its steps see it: its calls and checkpoints pass through one interceptor chain. */
function openAttempt(deps: LoopDeps, run: RunInput, progress: LoopProgress): MeteredAttempt {
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
  // Counted from the task's durable usage: what earlier attempts spent is in it, however the task was resumed.
  const budget = new BudgetMeter(budgetsOf(task, agent), task, { prices, estimator: deps.estimator, now: deps.now });
  return { task, fence, agent, labels, signal, callSignal, store, llm, tools, prices, retry, logger, metrics, progress, stepCheckpointed, budget };
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

/**
 * Checkpoints written but not waited for yet: the classification's, or the last tool calls'. The next model
 * turn is asked meanwhile (askModelWhile); every other way on waits for them first, and a write that failed
 * ends the attempt with its error, as it did when everything waited for it.
 */
class OnTheirWay {
  private writes: Promise<void> | undefined;

  set(writes: Promise<void> | undefined): void {
    this.writes = writes;
  }

  /** The writes, handed to whoever waits for them from now on. */
  take(): Promise<void> | undefined {
    const writes = this.writes;
    this.writes = undefined;
    return writes;
  }

  /** Waits for the writes: throws the first that failed. */
  async stored(): Promise<void> {
    await this.take();
  }
}

async function runAttempt(a: MeteredAttempt, deps: Pick<LoopDeps, "toolSpecs" | "sideEffectTools" | "store" | "holdTurnMs">, maxSteps: number): Promise<RunOutcome> {
  const writes = new OnTheirWay();
  try {
    return await runSteps(a, deps, maxSteps, writes);
  } catch (err) {
    // The attempt does not end, on any error, before its checkpoints are settled.
    await writes.take()?.catch(() => undefined);
    throw err;
  }
}

async function runSteps(a: MeteredAttempt, deps: Pick<LoopDeps, "toolSpecs" | "sideEffectTools" | "store" | "holdTurnMs">, maxSteps: number, writes: OnTheirWay): Promise<RunOutcome> {
  const { task, agent, signal, budget } = a;
  // The claim's row counts the checkpoints (each raises `steps` in the statement that stores it) and its new fence bars
  // anyone else from adding one: a task claimed with none has none to read, which saves a fresh task the query.
  const stored = task.steps === 0 ? [] : await a.store.listSteps(task.id);
  // Rebuilt from the checkpoints on every attempt: a resumed task reports no call twice.
  const ledger = ToolCallLedger.fromCheckpoints(stored);
  const toolParents = new Map<number, string>();
  a.progress.steps = stored.length;
  a.progress.toolCalls = ledger.count;
  // Tiered agents classify first (step 1) and run on the tier that picks; others run on their default tier.
  // A classification its budgets cannot afford is not made: the task runs out on its default tier.
  let refused: Exhaustion | undefined;
  const choice = await chooseTier(a, stored).catch((err: unknown): TierChoice => {
    refused = refusal(err);
    return { tier: agent.defaultTier, firstStep: 1, tokens: 0 };
  });
  if (choice === "interrupted") return { kind: "interrupted", reason: signal.reason };
  writes.set(choice.stored);
  const tierName = choice.tier;
  const tier = agent.tiers[tierName];
  if (!tier) throw new ModelBehaviorError(`agent ${agent.name} has no tier ${tierName}`);

  const state = replay(task.input, stored, choice.firstStep);
  // Asked together, so both come from one description of the tools (a planner caches it for a while).
  const [specs, sideEffects] = await Promise.all([deps.toolSpecs(agent), deps.sideEffectTools?.(agent)]);
  ledger.premarks.know(sideEffects);
  if (state.llmSteps + state.toolSteps > 0) {
    a.logger.info({ taskId: task.id, event: "task.resumed", step: state.nextStep, attempt: task.attempts }, "resuming from checkpoint");
    a.metrics?.taskResumed(a.labels);
  }
  const out = (ex: Exhaustion) => exhaust(a, state, { tierName, tier }, ex);
  if (refused) return out(refused);
  // On the exits that leave owed calls undispatched: their premarks go back (premark.ts), not on the way to them.
  const unmark = () => giveBackPremarks(a, deps.store, ledger);
  // The turn whose calls are pending, its checkpoint held to be written with their results (they change nothing).
  // Set only when the attempt is not stopping, with nothing awaited before the pending calls take it.
  let held: AnsweredTurn | undefined;

  for (;;) {
    if (signal.aborted) {
      await writes.stored();
      await unmark();
      return { kind: "interrupted", reason: signal.reason };
    }

    if (state.pending.length > 0) {
      await writes.stored();
      const turn = held;
      held = undefined;
      const late = budget.wall();
      if (late) {
        if (turn) await commitTurn(a, turn);
        await unmark();
        return out(late);
      }
      const { results, stored: toolsStored } = await dispatchTools(a, state.pending, ledger, toolParents, turn && { turn, holdMs: deps.holdTurnMs ?? HOLD_TURN_MS });
      writes.set(toolsStored);
      // A gated call still waiting for an operator (src/approvals) parks the task, the turn's other calls checkpointed.
      const parked = awaitingApproval(a, state.pending, results);
      if (parked) {
        await writes.stored();
        return parked;
      }
      const blocks = new Map<number, UserBlock>([...state.doneResults, ...results]);
      state.messages.push({
        role: "user",
        content: [...blocks.entries()].sort(([x], [y]) => x - y).map(([, b]) => b),
      });
      state.pending = [];
      state.doneResults = new Map();
      if (signal.aborted) {
        await writes.stored();
        return { kind: "interrupted", reason: signal.reason };
      }
      continue;
    }

    if (state.lastLlm) {
      await writes.stored();
      const { content, stop_reason } = state.lastLlm;
      // A checkpointed answer without tool calls (its attempt ended before its terminal write): the task ends as
      // that attempt would have ended it; a wrap-up with the budget it recorded.
      return endingOf(content, stop_reason, tier.max_tokens, agent.resultFormat, wrapUpAt(stored, state.nextStep - 1));
    }

    const spent = stepsSpent(maxSteps, state.nextStep) ?? tokensSpent(budget.budgets.max_tokens, budget.spent);
    if (spent) {
      await writes.stored();
      return out(spent);
    }

    const step = state.nextStep;
    let turn: AnsweredTurn;
    try {
      turn = await askModelWhile(a, writes.take(), { step, tierName, tier, system: agent.systemPrompt, messages: state.messages, tools: specs });
    } catch (err) {
      return out(refusal(err));
    }
    const { response } = turn;
    const content: ContentBlock[] = response.content;
    const uses = toolUses(content);
    if (uses.length === 0) {
      // As at any step boundary, a stop here leaves the answer checkpointed: whoever resumes the task ends it so.
      if (signal.aborted) {
        await commitTurn(a, turn);
        return { kind: "interrupted", reason: signal.reason };
      }
      return endOn(a, turn, () => endingOf(content, response.stop_reason, tier.max_tokens, agent.resultFormat));
    }
    // Calls that will not be dispatched now (the attempt is stopping, or out of wall time) are not premarked.
    const dispatchNow = !signal.aborted && !budget.wall();
    // Calls that change nothing are made first, and the turn is checkpointed with their results, in one commit.
    if (dispatchNow && ledger.premarks.changeNothing(a, specs, content)) held = turn;
    else await commitTurn(a, turn, dispatchNow ? ledger.premarks : undefined);
    state.messages.push({ role: "assistant", content });
    state.llmSteps++;
    state.nextStep = step + 1 + uses.length;
    state.pending = uses.map((u, i) => ({ step: step + 1 + i, id: u.id, name: u.name, input: u.input }));
    state.lastLlm = null;
    // The model turn that asked for the tools is their spans' parent.
    if (response.traceparent !== undefined) for (const p of state.pending) toolParents.set(p.step, response.traceparent);
    logToolChoice(a, step, content, specs, {
      attempt: task.attempts,
      tier: tierName,
      llm_steps: state.llmSteps,
      tool_calls: ledger.count,
      used_tokens: budget.spent.inputTokens + budget.spent.outputTokens,
      cost_usd: budget.spent.costUsd,
      max_steps: maxSteps,
      stop_reason: response.stop_reason,
    });
  }
}

/**
 * The model's next turn, asked while the last checkpoints are on their way (OnTheirWay): the turn is answered
 * only once they are stored, so nothing after it (its checkpoint, the task's end) can come before them.
 * - A checkpoint that fails (a stale fence, the store unreachable) ends the attempt with the write's error, as
 *   it did when the call came after the write. The call acts on nothing the steps record: it is cut short (and
 *   not made again: modelRetry.ts), and its answer dropped, what it spent with it, as a crash would drop it.
 * - A stop (`signal`) that comes meanwhile finds the call made, as a stop during any model call does: its
 *   answer is checkpointed, and the attempt stops at the next step boundary.
 * - A crash meanwhile loses the answer, as a crash during any model call does; whoever resumes asks again.
 */
async function askModelWhile(a: MeteredAttempt, writes: Promise<void> | undefined, turn: TurnRequest): Promise<AnsweredTurn> {
  if (!writes) return askModel(a, turn);
  const cut = new AbortController();
  const asked = askModel({ ...a, callSignal: AbortSignal.any([a.callSignal, cut.signal]) }, turn);
  asked.catch(() => undefined);
  try {
    await writes;
  } catch (err) {
    cut.abort(err);
    await asked.catch(() => undefined);
    throw err;
  }
  return asked;
}

/**
 * How an answer without tool calls ends the attempt: succeeded with its result, or failed when it was cut
 * off (`max_tokens`) or refused. `wrappedUp`: the budget a wrap-up answer recorded.
 */
function endingOf(
  content: readonly ContentBlock[],
  stopReason: string | null,
  maxTokens: number,
  format: AgentDefinition["resultFormat"],
  wrappedUp?: BudgetName,
): TerminalOutcome {
  if (wrappedUp) return { kind: "succeeded", result: buildResult(content, format), budgetExhausted: wrappedUp };
  if (stopReason === "max_tokens") return failedBy(new ModelBehaviorError(`the model's answer was cut off at max_tokens (${maxTokens})`));
  if (stopReason === "refusal") return failedBy(new ModelBehaviorError("the model refused the task"));
  return { kind: "succeeded", result: buildResult(content, format) };
}

/**
 * The attempt ends on `turn`'s answer: the outcome carries the answer's checkpoint, which the terminal write
 * stores with it in one statement (and announces after it), instead of a checkpoint of its own first. A crash
 * between the answer and that write loses the answer, as a crash before its own checkpoint would: the task
 * resumes from the step before and asks the model again. An outcome that cannot be computed (`buildResult`
 * throws) checkpoints the answer at once, as before, so it is not lost with the attempt.
 */
async function endOn(a: Attempt, turn: AnsweredTurn, ending: () => TerminalOutcome): Promise<RunOutcome> {
  let outcome: TerminalOutcome;
  try {
    outcome = ending();
  } catch (err) {
    await commitTurn(a, turn);
    throw err;
  }
  return { ...outcome, checkpoint: turn.checkpoint };
}

/** The budget a refused model turn names; any other error is the attempt's. */
function refusal(err: unknown): Exhaustion {
  const ex = exhaustionOf(err);
  if (!ex) throw err;
  return ex;
}

/** The budget a checkpointed wrap-up turn at `step` records, if that step is one. */
function wrapUpAt(stored: readonly StepRecord[], step: number): BudgetName | undefined {
  const s = stored.find((x) => x.step === step);
  return s?.kind === "llm" ? s.data.budget_exhausted : undefined;
}

/**
 * A budget ran out. `fail`: the task fails with `budget_exceeded`. `finish`: tool calls still owed are
 * answered "not made" (checkpointed, so the log replays whole), then one wrap-up turn, offered no tools and
 * told to answer now, ends the task succeeded with the budget recorded on it.
 */
async function exhaust(a: MeteredAttempt, state: ReplayState, on: { tierName: string; tier: Tier }, ex: Exhaustion): Promise<RunOutcome> {
  const { task, agent, budget } = a;
  const spent = budget.spent;
  a.logger.info(
    { taskId: task.id, event: "task.budget_exhausted", budget: ex.budget, limit: ex.limit, on_exhausted: budget.onExhausted, step: state.nextStep, spent },
    ex.message,
  );
  if (budget.onExhausted === "fail") return failedBy(new BudgetExceededError(ex.message));
  if (state.pending.length > 0) {
    const blocks = new Map<number, UserBlock>([...state.doneResults, ...(await skipTools(a, state.pending, ex))]);
    state.messages.push({ role: "user", content: [...blocks.entries()].sort(([x], [y]) => x - y).map(([, b]) => b) });
    state.pending = [];
    state.doneResults = new Map();
  }
  if (a.signal.aborted) return { kind: "interrupted", reason: a.signal.reason };
  const { response } = await modelTurn(a, {
    step: state.nextStep,
    tierName: on.tierName,
    tier: on.tier,
    system: agent.systemPrompt,
    messages: wrapUpMessages(state.messages, ex.budget),
    tools: [],
    wrapUp: { budget: ex.budget, maxTokens: budget.wrapUpMaxTokens(on.tier.max_tokens, ex) },
  });
  return { kind: "succeeded", result: buildResult(response.content, agent.resultFormat), budgetExhausted: ex.budget };
}

/**
 * The premarks of this attempt whose calls it did not dispatch, given back: their next dispatch then counts as
 * the call's first start, not as an unknown outcome. Best effort: a failure is logged and leaves them, as before.
 */
async function giveBackPremarks(a: Attempt, store: LoopDeps["store"], ledger: ToolCallLedger): Promise<void> {
  const steps = ledger.premarks.untaken();
  if (steps.length === 0 || !store.toolCallUnmark) return;
  const keys = steps.map((step) => toolCallKey(a.task.id, step));
  try {
    await store.toolCallUnmark(keys);
  } catch (err) {
    a.logger.warn({ taskId: a.task.id, event: "tool.unmark_failed", steps, err: messageOf(err) }, "could not give back the premarks of calls not dispatched; each will count one unknown outcome");
  }
}

/** Owed tool calls the budget leaves unmade, each checkpointed as an error result the wrap-up turn reads. */
async function skipTools(a: Attempt, pending: readonly PendingToolUse[], ex: Exhaustion): Promise<Map<number, UserBlock>> {
  const out = new Map<number, UserBlock>();
  for (const use of pending) {
    const data = { ok: false, output: { error: `not made: ${ex.message}` } };
    await a.store.appendStep(a.task.id, a.fence, {
      kind: "tool",
      step: use.step,
      data: { tool: use.name, tool_use_id: use.id, input: use.input, ...data, duration_ms: 0, idempotency_key: `${a.task.id}:${use.step}` },
    });
    a.stepCheckpointed({ taskId: a.task.id, step: use.step, kind: "tool", tool: use.name, ok: false, duration_ms: 0, ...a.labels });
    out.set(use.step, toolResultBlock(use.id, data));
  }
  return out;
}

function failedBy(err: Error & { errorType?: string }): TerminalOutcome {
  return { kind: "failed", error: { type: err.errorType ?? "internal_error", message: err.message } };
}
