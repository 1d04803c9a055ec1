/**
 * The planner's side of a cancel, for one attempt. `abort()` sets a flag that is
 * checked synchronously right before any model or tool call is handed to the
 * broker, so once the planner has answered the abort no call of the task starts
 * from it; it then aborts the attempt's own call signal (a model call in flight
 * is abandoned and cancelled at the gateway, which aborts the provider request;
 * a tool call is asked to stop where the executor can do so safely) and the
 * attempt's step signal, so the loop ends at once, as `interrupted` with the
 * cancel as its reason: settled without a write (the store already made the task
 * `cancelled` and bumped its fence) and never retried.
 *
 * A model call cut short this way was still paid for: its input tokens (an
 * estimate, as the gateway reserved them) are added to the task's usage by an
 * unfenced write, since the attempt's own writes are refused from now on.
 */
import type { AttemptInterceptor } from "../agent/interceptors";
import type { CompleteRequest, CompleteResponse, LlmUsage } from "../contracts";
import { LeaseLostError, messageOf, TaskCancelledError } from "../errors";
import type { PriceTable } from "../llm/pricing";
import { rawTokenEstimate } from "../ratelimit";
import type { TaskStore } from "../store/types";

export interface AttemptCancelDeps {
  store: Pick<TaskStore, "addUsage">;
  prices: Pick<PriceTable, "usageOf">;
  logger: { info(obj: unknown, msg?: string): void; warn(obj: unknown, msg?: string): void };
}

export class AttemptCancel {
  private readonly own = new AbortController();
  private reason: TaskCancelledError | undefined;
  /** The attempt's call signal: aborted by its cancel, or by the process's (a shutdown past its drain). */
  readonly callSignal: AbortSignal;

  /**
   * `steps`: the attempt's controller (its step signal, which a lost lease aborts too). A lost lease aborts the
   * calls as well: the attempt is dead, and a model call of it still waiting at the rate gateway would hold its
   * place in the queue, then be admitted and paid for, while the lease's new holder asks for the same step.
   */
  constructor(
    private readonly deps: AttemptCancelDeps,
    readonly taskId: string,
    private readonly steps: AbortController,
    processCalls: AbortSignal,
  ) {
    this.callSignal = AbortSignal.any([processCalls, this.own.signal, leaseLost(steps.signal)]);
  }

  /** The cancel that ended the attempt, if any. */
  get cancelled(): TaskCancelledError | undefined {
    return this.reason;
  }

  /** Idempotent: the first reason stays. */
  abort(reason?: string): void {
    if (this.reason) return;
    this.reason = new TaskCancelledError(`task ${this.taskId} was cancelled${reason ? `: ${reason}` : ""}`, { taskId: this.taskId });
    this.own.abort(this.reason);
    if (!this.steps.signal.aborted) this.steps.abort(this.reason);
  }

  /** Throws the cancel, if there was one. */
  check(): void {
    if (this.reason) throw this.reason;
  }

  /**
   * Wraps the attempt's base clients (innermost, so nothing can await between the check and the send), not
   * a link of the chain that other concerns could follow.
   */
  get interceptor(): AttemptInterceptor {
    return {
      name: "cancel",
      modelCall: async (req, next) => {
        this.check();
        let answer: CompleteResponse;
        try {
          answer = await next(req);
        } catch (err) {
          if (this.reason) await this.charge(req, { input_tokens: rawTokenEstimate(req), output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 }, "aborted");
          throw err;
        }
        // Answered just as the cancel came: its checkpoint would be refused, but its usage was spent.
        if (this.reason) {
          await this.charge(req, answer.usage, "answered");
          throw this.reason;
        }
        return answer;
      },
      toolCall: (call, next) => {
        this.check();
        return next(call);
      },
    };
  }

  private async charge(req: CompleteRequest, usage: LlmUsage, how: "aborted" | "answered"): Promise<void> {
    const spent = this.deps.prices.usageOf(req.model, usage);
    try {
      await this.deps.store.addUsage(this.taskId, spent);
      this.deps.logger.info({ taskId: this.taskId, event: "task.cancel_usage", step: req.step, how, input_tokens: spent.input_tokens, output_tokens: spent.output_tokens }, "usage of a model call cut short by the cancel recorded");
    } catch (err) {
      this.deps.logger.warn({ taskId: this.taskId, event: "task.cancel_usage_failed", err: messageOf(err) }, "could not record the usage of a cancelled model call");
    }
  }
}

/** Aborts, with the same reason, once `steps` aborts with a LeaseLostError; other reasons (shutdown, cancel) have their own ways. */
function leaseLost(steps: AbortSignal): AbortSignal {
  const lost = new AbortController();
  const check = () => {
    if (steps.reason instanceof LeaseLostError) lost.abort(steps.reason);
  };
  if (steps.aborted) check();
  else steps.addEventListener("abort", check, { once: true });
  return lost.signal;
}
