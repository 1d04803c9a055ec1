/**
 * What cuts across every step of an attempt (the lease check before each call,
 * progress counting, the planner's step events and metrics) is one named chain
 * of interceptors around the attempt's calls, as in the Temporal TypeScript SDK,
 * rather than wrappers around its dependencies: each concern is written once, in
 * the place that owns it, and the order they run in is the order of the list.
 */
import type { LoopMetrics, LoopProgress, StepEvent } from "./attempt";
import type { CompleteRequest, CompleteResponse } from "../contracts";
import type { LlmClient } from "../llm/client";
import type { TaskLabels } from "../telemetry/metrics";
import type { ToolCall, ToolResult } from "../contracts";
import type { ToolRunner } from "../tools/tool";

export type Next<I, O> = (input: I) => Promise<O>;

export interface AttemptInterceptor {
  /** Says which concern this is, for whoever reads the chain. */
  readonly name: string;
  /**
   * Around every model call, each retry included; throwing stops the call before it starts. `signal`: the
   * call's own, for an interceptor that waits before the call (it ends the wait when the call is aborted).
   */
  modelCall?(req: CompleteRequest, next: Next<CompleteRequest, CompleteResponse>, signal?: AbortSignal): Promise<CompleteResponse>;
  /** Around every tool call; throwing stops the call before it starts. `signal` as for `modelCall`. */
  toolCall?(call: ToolCall, next: Next<ToolCall, ToolResult>, signal?: AbortSignal): Promise<ToolResult>;
  /** After each checkpoint (model turn or tool result) is written. */
  stepCheckpointed?(event: StepEvent): void;
  /** After each backoff on rate-limit backpressure is over, with the seconds it took. */
  rateLimitWaited?(seconds: number, req: CompleteRequest): void;
}

/** The interceptors of one attempt; the first listed is the outermost around a call and the first told of an event. */
export class InterceptorChain {
  constructor(readonly interceptors: readonly AttemptInterceptor[]) {}

  /** The call's abort signal goes to `base` unchanged; interceptors are shown it, and cannot replace it. */
  llm(base: LlmClient): LlmClient {
    const complete = (req: CompleteRequest, signal?: AbortSignal) =>
      this.interceptors.reduceRight<Next<CompleteRequest, CompleteResponse>>((next, i) => {
        const around = i.modelCall?.bind(i);
        return around ? (r) => around(r, next, signal) : next;
      }, (r) => base.complete(r, signal))(req);
    return { complete };
  }

  tools(base: ToolRunner): ToolRunner {
    const run = (call: ToolCall, signal?: AbortSignal) =>
      this.interceptors.reduceRight<Next<ToolCall, ToolResult>>((next, i) => {
        const around = i.toolCall?.bind(i);
        return around ? (c) => around(c, next, signal) : next;
      }, (c) => base.run(c, signal))(call);
    return { run };
  }

  readonly stepCheckpointed = (event: StepEvent): void => {
    for (const i of this.interceptors) i.stepCheckpointed?.(event);
  };

  readonly rateLimitWaited = (seconds: number, req: CompleteRequest): void => {
    for (const i of this.interceptors) i.rateLimitWaited?.(seconds, req);
  };
}

/** The attempt's own bookkeeping: progress for the task's metrics, and the planner's rate-limit wait series. */
export function progressCounting(progress: LoopProgress, labels: TaskLabels, metrics: LoopMetrics | undefined): AttemptInterceptor {
  return {
    name: "progress",
    stepCheckpointed: (e) => {
      progress.steps++;
      if (e.kind === "tool") progress.toolCalls++;
    },
    rateLimitWaited: (seconds, req) => metrics?.rateLimitWait({ ...labels, model: req.model }, "planner_backoff", seconds),
  };
}
