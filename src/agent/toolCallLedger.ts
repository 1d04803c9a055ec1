/**
 * Duplicate tool calls: the same tool with the same input (sha256 of its
 * canonical JSON) called more than once in one task, usually a sign of a prompt
 * that loses track of what it already knows.
 *
 * The ledger is rebuilt from the task's checkpoints at the start of every
 * attempt, silently, and a call is entered when its own checkpoint is written.
 * Each tool step is checkpointed exactly once, so a resumed task (on this planner
 * or another) never reports a call twice, and never misses a repeat of a call
 * made by an earlier attempt.
 *
 * It is the attempt's, so it also holds which of the calls this attempt's model
 * turns asked for had their side-effect ledger rows written with the turn's
 * checkpoint (src/agent/premark.ts).
 */
import type { StepRecord } from "../contracts";
import { Premarks } from "./premark";
import { inputHash } from "../telemetry/inputHash";

export interface DuplicateCall {
  /** The step that made the same call first. */
  firstStep: number;
  inputHash: string;
}

export class ToolCallLedger {
  private readonly first = new Map<string, number>();
  private calls = 0;
  /** This attempt's premarked calls. */
  readonly premarks = new Premarks();

  /** The calls a task's checkpoints already hold. */
  static fromCheckpoints(stored: readonly StepRecord[]): ToolCallLedger {
    const ledger = new ToolCallLedger();
    for (const s of [...stored].sort((a, b) => a.step - b.step)) {
      if (s.kind === "tool") ledger.enter(s.data.tool, s.data.input, s.step);
    }
    return ledger;
  }

  /** Tool calls the task has made, checkpointed ones from earlier attempts included. */
  get count(): number {
    return this.calls;
  }

  /** Enters a checkpointed call; answers the earlier call it repeats, if any. */
  enter(tool: string, input: unknown, step: number): DuplicateCall | undefined {
    this.calls++;
    const hash = inputHash(input);
    const key = `${tool}\u0000${hash}`;
    const firstStep = this.first.get(key);
    if (firstStep === undefined || firstStep === step) {
      this.first.set(key, step);
      return undefined;
    }
    return { firstStep, inputHash: hash };
  }
}
