/**
 * Premarked side-effect calls. The executor's ledger (src/tools/executor.ts)
 * needs a row saying "dispatched, outcome unknown until recorded" before a
 * side-effect tool is called. For the calls a model turn asks for, that row is
 * written with the turn's own checkpoint (`appendStep`'s marks), in the same
 * commit, instead of in a commit of its own before each call; the attempt that
 * wrote it says so on the call's first dispatch (`premarked`), and the executor
 * counts the row as the call's start.
 *
 * Marked: the calls of tools the executor described as side effects for this
 * attempt and that no approval gates (a gated call may never run, or run
 * attempts later: it is started the usual way when it does). Nothing is marked
 * when the executor did not say which tools are side effects (an older build),
 * nor when the store did not confirm it wrote the marks (an older checkpoint
 * service): those calls are started as they always were. A call dispatched
 * again (a resumed attempt, another planner) is never premarked.
 *
 * A premark whose call never goes out must not count as an unknown outcome (with
 * CLAWFLEET_TOOL_MAX_UNKNOWN_OUTCOMES=1 it would fail a task whose tool never ran):
 * - a turn checkpointed when the attempt is already stopping (its signal aborted: shutdown, lost lease,
 *   cancel) or out of wall time writes no marks (runLoop.ts), since its calls will not be dispatched now;
 * - when the signal aborts or the wall budget runs out between that checkpoint and the dispatch, the loop
 *   gives the untaken premarks back on that exit (`untaken`, the store's `toolCallUnmark`: it deletes only a
 *   row still as the premark wrote it, starts 1 and outcome unknown). Only on those exits: no store call on
 *   the way to the tools. A give-back that fails is logged, and leaves what it would have undone: one
 *   unknown outcome counted on the next dispatch.
 * Still uncovered: a crash of the planner in that window, and a call taken (`take`) but refused before it
 * leaves the planner (the cancel's check, the lease keeper's deadline check): each counts one unknown
 * outcome that was not one, as a crash between a start and its call always did.
 *
 * A zombie. The premark is honoured only on the dispatch of the attempt that wrote it, and that dispatch
 * checks its lease's sure-until deadline right before the call (the lease keeper's interceptor,
 * src/agent/leaseKeeper.ts). A successor can record an outcome only after that lease lapsed, so only a
 * premarked call that reaches the executor more than a lease TTL after its dispatch (a planner or a broker
 * stalled that long in between) can miss a successor's recorded outcome and run again; the tool's own dedupe
 * on the idempotency key, which the contract asks of every side-effect tool, then answers, as it does for
 * two concurrent starts.
 */
import type { Attempt } from "./attempt";
import { allows } from "./definition";
import { toolUses } from "./replay";
import { needsApproval } from "../approvals/gate";
import type { ContentBlock, StoreResult, ToolCallMark } from "../contracts";

/** A tool call's idempotency key: stable across resumes, the ledger's key. */
export const toolCallKey = (taskId: string, step: number): string => `${taskId}:${step}`;

/** What a store answers to `appendStep`: `{ marked: true }` once it wrote the marks it was given (`void`: a test double's). */
export type AppendStepAnswer = StoreResult<"appendStep"> | void;

/** One attempt's premarks; rebuilt empty with every attempt. */
export class Premarks {
  private sideEffects: ReadonlySet<string> | undefined;
  private readonly steps = new Set<number>();

  /** The agent's side-effect tools as the executor described them for this attempt; undefined: not known. */
  know(sideEffects: ReadonlySet<string> | undefined): void {
    this.sideEffects = sideEffects;
  }

  /**
   * The marks to write with the checkpoint of the model turn at `step` whose answer is `content`: its tool
   * calls take the steps right after it, in order, as the loop numbers them.
   */
  marksFor(a: Pick<Attempt, "task" | "agent">, step: number, content: readonly ContentBlock[]): ToolCallMark[] {
    const sideEffects = this.sideEffects;
    if (sideEffects === undefined) return [];
    const marks: ToolCallMark[] = [];
    toolUses(content).forEach((use, i) => {
      if (!sideEffects.has(use.name) || !allows(a.agent, use.name) || needsApproval(a.agent, use.name)) return;
      const callStep = step + 1 + i;
      marks.push({ idempotencyKey: toolCallKey(a.task.id, callStep), step: callStep, tool: use.name });
    });
    return marks;
  }

  /**
   * Whether every call of `content` changes nothing: a tool the executor described, not as a side effect, that
   * the agent allows and no approval gates. False while the executor has not said which tools are side effects.
   * Such calls may run before their turn's checkpoint is stored (runLoop.ts): a crash before it is stored has
   * them made again, which a tool without side effects allows.
   */
  changeNothing(a: Pick<Attempt, "agent">, described: readonly { name: string }[], content: readonly ContentBlock[]): boolean {
    const sideEffects = this.sideEffects;
    if (sideEffects === undefined) return false;
    return toolUses(content).every(
      (use) => !sideEffects.has(use.name) && described.some((s) => s.name === use.name) && allows(a.agent, use.name) && !needsApproval(a.agent, use.name),
    );
  }

  /** After the checkpoint committed, with the store's answer: its calls are premarked only if the store says it wrote them. */
  committed(marks: readonly ToolCallMark[], answer: AppendStepAnswer): void {
    if (answer?.marked !== true) return;
    for (const m of marks) this.steps.add(m.step);
  }

  /** Whether this dispatch of `step` is its premarked first one; answers true once at most. */
  take(step: number): boolean {
    return this.steps.delete(step);
  }

  /** The premarked steps not taken, in order; none is premarked afterwards (their rows are to be given back). */
  untaken(): number[] {
    const steps = [...this.steps].sort((x, y) => x - y);
    this.steps.clear();
    return steps;
  }
}
