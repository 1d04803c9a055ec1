/**
 * Tool and model switches, in the planner: an interceptor in front of every
 * model and tool call of every attempt. A call of a paused tool or model waits
 * before it starts, its task's lease kept alive by its keeper's heartbeat, and
 * goes ahead by itself when the switch lifts. The wait ends early when the call
 * is aborted (the task cancelled, a shutdown past its step drain) or the gate is
 * stopped (a shutdown). A pause with `in_flight: abort` cancels the tasks waiting
 * at that switch or inside a call of it on this planner.
 */
import type { SwitchBoard, SwitchTransition } from "./board";
import type { AttemptInterceptor } from "../agent/interceptors";
import type { SwitchKind } from "../contracts";
import { messageOf, TaskFinishedError } from "../errors";
import type { Logger } from "../logging";

/** How often a held call tells the planner it is alive: a task held on purpose is not a stalled planner. */
const HELD_BEAT_MS = 1_000;

type CallKind = Extract<SwitchKind, "tool" | "model">;

export interface SwitchGateDeps {
  board: Pick<SwitchBoard, "whenLoaded" | "isPaused" | "waitWhilePaused" | "onChange">;
  logger: Pick<Logger, "info" | "warn">;
  /** Cancels a task (intake's `cancelTask`), as `by`, for `reason`. */
  cancel(taskId: string, by: string, reason: string): Promise<unknown>;
  /** Called every second while a call is held (the planner's stall watchdog). @default nothing */
  onHeld?(): void;
}

const keyOf = (kind: CallKind, name: string) => `${kind}\u0000${name}`;

export class SwitchGate {
  /** Tasks waiting at, or inside a call of, each tool and model: how many calls of each task. */
  private readonly at = new Map<string, Map<string, number>>();
  private readonly stopped = new AbortController();
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: SwitchGateDeps) {
    this.unsubscribe = deps.board.onChange((t) => this.changed(t));
  }

  readonly interceptor: AttemptInterceptor = {
    name: "switches",
    modelCall: (req, next, signal) => this.pass("model", req.model, req.taskId, signal, () => next(req)),
    toolCall: (call, next, signal) => this.pass("tool", call.tool, call.taskId, signal, () => next(call)),
  };

  /** Ends every wait now, with `reason` (a shutdown), and every wait that would start from now on. */
  stop(reason: unknown): void {
    this.unsubscribe();
    this.stopped.abort(reason);
  }

  /** Tasks at the gate of `kind`/`name` now (waiting or inside a call), for tests and the planner's view. */
  tasksAt(kind: CallKind, name: string): string[] {
    return [...(this.at.get(keyOf(kind, name))?.keys() ?? [])];
  }

  private async pass<T>(kind: CallKind, name: string, taskId: string, signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
    await this.deps.board.whenLoaded();
    const key = keyOf(kind, name);
    this.enter(key, taskId);
    try {
      if (this.deps.board.isPaused(kind, name)) await this.hold(kind, name, taskId, signal);
      return await call();
    } finally {
      this.leave(key, taskId);
    }
  }

  private async hold(kind: CallKind, name: string, taskId: string, signal: AbortSignal | undefined): Promise<void> {
    const startedAt = performance.now();
    this.deps.logger.info({ taskId, event: "switch.held", kind, name }, `task waits: ${kind} ${name} is paused`);
    const beat = setInterval(() => this.deps.onHeld?.(), HELD_BEAT_MS);
    beat.unref();
    try {
      const ended = signal ? AbortSignal.any([signal, this.stopped.signal]) : this.stopped.signal;
      await this.deps.board.waitWhilePaused(kind, name, ended);
    } finally {
      clearInterval(beat);
    }
    const waitedMs = Math.round(performance.now() - startedAt);
    this.deps.logger.info({ taskId, event: "switch.resumed", kind, name, waited_ms: waitedMs }, `${kind} ${name} lifted; the task goes on`);
  }

  private enter(key: string, taskId: string): void {
    const tasks = this.at.get(key) ?? new Map<string, number>();
    this.at.set(key, tasks);
    tasks.set(taskId, (tasks.get(taskId) ?? 0) + 1);
  }

  private leave(key: string, taskId: string): void {
    const tasks = this.at.get(key);
    if (!tasks) return;
    const n = (tasks.get(taskId) ?? 1) - 1;
    if (n > 0) tasks.set(taskId, n);
    else tasks.delete(taskId);
    if (tasks.size === 0) this.at.delete(key);
  }

  /** A tool or model paused with `abort`: the tasks at its gate here are cancelled, each once. */
  private changed({ after }: SwitchTransition): void {
    if ((after.kind !== "tool" && after.kind !== "model") || !after.paused || after.in_flight !== "abort") return;
    const tasks = this.tasksAt(after.kind, after.name);
    if (tasks.length === 0) return;
    const reason = `kill switch ${after.kind}/${after.name} paused with in_flight=abort`;
    this.deps.logger.info({ event: "switch.aborting", kind: after.kind, name: after.name, by: after.updated_by, tasks: tasks.length }, `cancelling ${tasks.length} task(s) at ${after.kind} ${after.name}`);
    for (const taskId of tasks) {
      this.deps.cancel(taskId, after.updated_by, reason).catch((err: unknown) => {
        // Finished meanwhile: nothing left to stop.
        if (err instanceof TaskFinishedError) return;
        this.deps.logger.warn({ taskId, event: "switch.abort_failed", kind: after.kind, name: after.name, err: messageOf(err) }, "could not cancel a task at a paused switch");
      });
    }
  }
}
