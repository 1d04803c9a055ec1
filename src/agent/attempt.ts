/**
 * The shapes the steps of one attempt share. An attempt is one lease on one
 * task: replay, model turns, tool calls and the end it settles on. Its steps
 * (modelTurn, toolDispatch, tierRouting, runLoop) live in their own files and
 * meet here, so none of them has to import another to know what it is handed.
 */
import type { AgentDefinition } from "./definition";
import type { RetryPolicy } from "./modelRetry";
import type { ApprovalRequest, NewStep, TaskRecord, Usage } from "../contracts";
import type { PriceTable } from "../llm/pricing";
import type { BudgetName } from "../contracts";
import type { BudgetMeter } from "../budgets";
import type { LlmClient } from "../llm/client";
import type { TaskStore } from "../store/types";
import type { ToolRunner } from "../tools/tool";
import type { Logger } from "../logging";
import type { Metrics, TaskLabels } from "../telemetry/metrics";

export type LoopLogger = Pick<Logger, "info" | "warn">;

export interface StepEvent {
  taskId: string;
  step: number;
  kind: "llm" | "tool";
  tool?: string;
  ok?: boolean;
  model?: string;
  usage?: Usage;
  duration_ms: number;
  /** Set on every event an attempt emits, so listeners can label by agent and prompt version. */
  agent?: string;
  prompt_version?: string;
}

export interface LoopProgress {
  steps: number;
  toolCalls: number;
}

/**
 * A model turn made but not written yet: the answer the attempt ends on. It is written with the task's
 * terminal write, in the same statement (`finishWithStep`), and announced after that commit.
 */
export interface PendingCheckpoint {
  step: NewStep;
  /** What the turn spent, added to the task's usage with the step. */
  usage: Usage;
  /** Tells the attempt's interceptor chain of the step (its StepEvent): only once it is stored. */
  announce(): void;
}

/**
 * `checkpoint`, on an ending: the model's answer that ended the attempt, still to be written with the outcome.
 * Whoever writes the outcome writes it too (settle.ts `writeTerminal`); an attempt that writes nothing loses it.
 */
export type RunOutcome =
  /** `budgetExhausted`: the budget that ran out, recorded on the task (`on_exhausted: finish` ended it with a wrap-up answer). */
  | { kind: "succeeded"; result: unknown; budgetExhausted?: BudgetName; checkpoint?: PendingCheckpoint }
  | { kind: "failed"; error: { type: string; message: string }; checkpoint?: PendingCheckpoint }
  /** Stopped at a step boundary because `signal` aborted; the task is resumable. */
  | { kind: "interrupted"; reason: unknown }
  /** A call the agent gates (`approval.tools`) waits for an operator's decision; the task parks on it (src/approvals). */
  | { kind: "awaiting_approval"; approval: ApprovalRequest };

/** An outcome the store records as the task's end. */
export type TerminalOutcome = Extract<RunOutcome, { kind: "succeeded" | "failed" }>;

/** The metrics recorded inside an attempt; optional (unit tests run without them). */
export type LoopMetrics = Pick<Metrics, "taskResumed" | "duplicateToolCall" | "rateLimitWait">;

/**
 * One attempt as its steps see it. `llm` and `tools` already pass through the
 * attempt's interceptor chain, and `stepCheckpointed` tells the chain about each
 * checkpoint, so a step only calls what it is handed.
 */
export interface Attempt {
  task: TaskRecord;
  /** The attempt's fencing token: every write carries it, so a zombie's writes are refused. */
  fence: number;
  agent: AgentDefinition;
  labels: TaskLabels;
  /** Aborted to stop at the next step boundary (shutdown, lost lease). */
  signal: AbortSignal;
  /** Aborted to cut the model and tool calls in flight short (a shutdown past its step drain). */
  callSignal: AbortSignal;
  /** `appendSteps`: a turn's checkpoint with its calls' results in one commit; without it, one by one. */
  store: Pick<TaskStore, "listSteps" | "appendStep" | "approvalOf"> & Partial<Pick<TaskStore, "appendSteps">>;
  llm: LlmClient;
  tools: ToolRunner;
  prices: PriceTable;
  /** Its `onRateLimitWait` goes to the interceptor chain. */
  retry: Partial<RetryPolicy>;
  logger: LoopLogger;
  metrics?: LoopMetrics | undefined;
  /** Kept current as checkpoints are written, earlier attempts' included. */
  progress: LoopProgress;
  stepCheckpointed(event: StepEvent): void;
  /** The task's budgets as this attempt spends them: model turns reserve their worst case here first. @default none checked */
  budget?: BudgetMeter | undefined;
}
