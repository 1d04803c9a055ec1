/**
 * `GET /v1/tasks/{id}/events`: a task's progress as Server-Sent Events,
 * resumable on any api replica.
 *
 * Every event is derived from what the store has committed (the task row and
 * its checkpoints), never from a replica's memory, so its id is durable: the
 * same event has the same id whichever replica computes it, before or after a
 * restart. Ids grow with the task's progress:
 *
 *   4·n      step n (a model turn or a tool result)
 *   4·n + 1  the task stopped in `awaiting_approval` after step n
 *   4·n + 3  the task ended (succeeded, failed or cancelled) after step n
 *
 * A client that reconnects with `Last-Event-ID: k` gets exactly the events
 * with ids above k. Steps are sent only as a run without holes: the tool calls
 * of one model turn may be checkpointed out of order, and a step sent past a
 * hole would let a reconnect skip the step that fills it later. Once the task
 * has ended nothing can fill a hole any more, so the rest goes out, then the
 * terminal event. Live events (the `clawfleet.task.*` lifecycle events) only
 * say "look again"; a slow poll is the backstop for one that was lost.
 *
 * An agent with `stream: true` also has the text of the model turn under way
 * sent live, as `delta` events with no id: they are transient (a reconnect
 * does not replay them), and the durable step that follows carries the text.
 */
import { PassThrough } from "node:stream";
import { TERMINAL_STATUSES, type StepRecord, type TaskRecord, type TextDeltaEvent } from "../contracts";
import type { TaskStore } from "../store/types";
import { stepView } from "./views";

export type StreamReads = Pick<TaskStore, "getTask" | "listStepsAfter">;

export interface StreamEvent {
  /** Absent on `reset` and `delta`, which move no cursor. */
  id?: number;
  event: "step" | "awaiting_approval" | "succeeded" | "failed" | "cancelled" | "reset" | "delta";
  data: Record<string, unknown>;
}

/** Steps read per round trip; a 10,000-step task is replayed in pages. */
export const STREAM_PAGE = 500;

export const stepEventId = (step: number): number => 4 * step;
const approvalEventId = (afterStep: number): number => 4 * afterStep + 1;
const terminalEventId = (afterStep: number): number => 4 * afterStep + 3;

/**
 * The cursor a client sent (`Last-Event-ID`, or `?last_event_id=` for clients that cannot set headers):
 * null for none, "invalid" for one no event could have carried.
 */
export function parseCursor(raw: string | undefined): number | null | "invalid" {
  if (raw === undefined || raw.trim() === "") return null;
  const s = raw.trim();
  if (!/^\d{1,15}$/.test(s)) return "invalid";
  return Number(s);
}

/** One client's position in one task's events. */
export class TaskEventCursor {
  private last: number;
  /** Steps sent so far are 1..contiguous (or the cursor's step): the next one sent is contiguous + 1. */
  private contiguous: number;
  private finished = false;

  constructor(
    private readonly reads: StreamReads,
    private readonly taskId: string,
    private readonly tenant: string | undefined,
    cursor: number | null,
  ) {
    this.last = cursor ?? -1;
    this.contiguous = cursor === null ? 0 : Math.floor(cursor / 4);
  }

  get done(): boolean {
    return this.finished;
  }

  /** Whether a live delta still says something: its step has not been sent (once it is, the step has the whole text). */
  wantsDelta(d: Pick<TextDeltaEvent, "tenant" | "step">): boolean {
    return !this.finished && d.step > this.contiguous && (this.tenant === undefined || this.tenant === d.tenant);
  }

  /**
   * The events committed since the last call (since the cursor, the first time). The task row is read
   * before its steps: a task read as ended has every step it will ever have already written.
   * `reset` first when the cursor is ahead of anything this task has (another database, a mangled id).
   */
  async next(): Promise<StreamEvent[]> {
    if (this.finished) return [];
    const task = await this.reads.getTask(this.taskId, this.tenant);
    if (!task) {
      this.finished = true;
      return [];
    }
    const out: StreamEvent[] = [];
    if (this.contiguous > task.steps) {
      out.push({ event: "reset", data: { task_id: task.id, reason: `event id ${this.last} is ahead of this task's events; replaying from the start` } });
      this.last = -1;
      this.contiguous = 0;
    }
    const ended = TERMINAL_STATUSES.includes(task.status);
    let maxSeen = this.contiguous;
    for (;;) {
      const page = await this.reads.listStepsAfter(this.taskId, this.contiguous, STREAM_PAGE, this.tenant);
      maxSeen = Math.max(maxSeen, page.at(-1)?.step ?? 0);
      const sendable = ended ? page : contiguousRun(page, this.contiguous);
      for (const s of sendable) this.push(out, { id: stepEventId(s.step), event: "step", data: { task_id: task.id, ...stepView(s) } });
      const last = sendable.at(-1);
      if (last) this.contiguous = last.step;
      if (page.length < STREAM_PAGE || sendable.length < page.length) break;
    }
    // Only while the row read above is still the latest word: a step past it means the task moved on since.
    // (Steps up to it may hold a hole: a gated call waits while a later call of the same turn already ran.)
    if (task.status === "awaiting_approval" && maxSeen <= task.steps) {
      this.push(out, { id: approvalEventId(this.contiguous), event: "awaiting_approval", data: { task_id: task.id, status: task.status, step: this.contiguous } });
    } else if (ended) {
      this.push(out, { id: terminalEventId(this.contiguous), event: task.status as "succeeded" | "failed" | "cancelled", data: terminalData(task) });
      this.finished = true;
    }
    return out;
  }

  /** Only events past the cursor go out: a reconnect never sees one twice. */
  private push(out: StreamEvent[], e: StreamEvent & { id: number }): void {
    if (e.id <= this.last) return;
    this.last = e.id;
    out.push(e);
  }
}

/** The steps of `page` that follow `after` without a hole. */
function contiguousRun(page: readonly StepRecord[], after: number): StepRecord[] {
  const run: StepRecord[] = [];
  let expect = after + 1;
  for (const s of page) {
    if (s.step !== expect) break;
    run.push(s);
    expect++;
  }
  return run;
}

function terminalData(task: TaskRecord): Record<string, unknown> {
  return {
    task_id: task.id,
    status: task.status,
    result: task.result ?? null,
    error: task.error ?? null,
    usage: task.usage,
    steps: task.steps,
    finished_at: task.finished_at,
  };
}

/** One event in the text/event-stream format. */
export function formatEvent(e: StreamEvent): string {
  const id = e.id === undefined ? "" : `id: ${e.id}\n`;
  return `${id}event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

interface Watcher {
  poke(): void;
  delta(d: TextDeltaEvent): void;
}

/** Told when the first stream opens and when the last one closes (streamSubscription.ts listens to the events only between). */
export interface StreamPresence {
  watching(): void;
  idle(): void;
}

/** Which open streams to poke when a task's lifecycle event arrives, and to hand a text delta of its model turn. */
export class StreamHub {
  private readonly watchers = new Map<string, Set<Watcher>>();
  private count = 0;

  constructor(private readonly presence?: StreamPresence) {}

  watch(taskId: string, poke: () => void, delta: (d: TextDeltaEvent) => void = () => undefined): () => void {
    let set = this.watchers.get(taskId);
    if (!set) this.watchers.set(taskId, (set = new Set()));
    const w = { poke, delta };
    set.add(w);
    if (++this.count === 1) this.presence?.watching();
    let watched = true;
    return () => {
      if (!watched) return;
      watched = false;
      set.delete(w);
      if (set.size === 0) this.watchers.delete(taskId);
      if (--this.count === 0) this.presence?.idle();
    };
  }

  notify(taskId: string): void {
    for (const w of this.watchers.get(taskId) ?? []) w.poke();
  }

  /** Every open stream looks again: live events may have been missed (the subscription is still being announced). */
  pokeAll(): void {
    for (const set of this.watchers.values()) for (const w of set) w.poke();
  }

  /** A text delta (`TEXT_DELTA_EVENT`): for the streams of its task only, nothing read from the store. */
  publish(d: TextDeltaEvent): void {
    for (const w of this.watchers.get(d.task_id) ?? []) w.delta(d);
  }

  get open(): number {
    return this.count;
  }
}

export interface StreamOptions {
  /** Looks again this often without a live event: the backstop for a lost one. @default 2000 */
  pollMs?: number;
  /** A comment line this often keeps proxies from closing an idle stream. @default 15000 */
  heartbeatMs?: number;
  /** Told of a read that failed; the stream then ends and the client reconnects with its cursor. */
  onError?(err: unknown): void;
}

/**
 * The response body of one client's stream: writes the events as the cursor finds them, ends after the
 * terminal event, and stops reading the store as soon as the client goes away (the body is destroyed).
 */
export function openTaskStream(cursor: TaskEventCursor, hub: StreamHub, taskId: string, opts: StreamOptions = {}): PassThrough {
  const body = new PassThrough();
  let wake: (() => void) | undefined;
  let poked = false;
  let closed = false;
  const poke = () => {
    poked = true;
    wake?.();
  };
  // Live deltas go out once the first read is written (a replay is not interleaved with them).
  let caughtUp = false;
  const unwatch = hub.watch(taskId, poke, (d) => {
    if (closed || !caughtUp || !cursor.wantsDelta(d)) return;
    const { tenant: _tenant, ...data } = d;
    body.write(formatEvent({ event: "delta", data }));
  });
  const heartbeat = setInterval(() => {
    if (!closed) body.write(": keep-alive\n\n");
  }, opts.heartbeatMs ?? 15_000);
  heartbeat.unref();
  body.on("close", () => {
    closed = true;
    clearInterval(heartbeat);
    unwatch();
    wake?.();
  });
  const finish = () => {
    closed = true;
    clearInterval(heartbeat);
    unwatch();
    if (!body.destroyed) body.end();
  };
  body.write("retry: 1000\n\n");
  void (async () => {
    try {
      while (!closed) {
        poked = false;
        const events = await cursor.next();
        if (closed) break;
        for (const e of events) body.write(formatEvent(e));
        caughtUp = true;
        if (cursor.done) break;
        if (poked) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, opts.pollMs ?? 2000);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    } catch (err) {
      opts.onError?.(err);
    } finally {
      finish();
    }
  })();
  return body;
}
