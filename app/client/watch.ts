/**
 * Following a task until it ends (`clawfleet watch`, `tasks submit --wait`).
 *
 * The task's live stream (`GET /v1/tasks/{id}/events`) says what happens as it
 * happens; a stream that drops is resumed with `Last-Event-ID`, so no step is
 * missed or shown twice. A cluster without that route is polled instead (the
 * task every 500 ms, its steps when their count moved).
 *
 * On a terminal, new steps scroll above a one-line progress display; anywhere
 * else (or with `--json`) the output is JSON lines, each an object the API
 * answered: the task when it is first read and whenever its status changes,
 * each new step, and the task as it ended, last.
 */
import type { StepView, TaskView } from "../../src/contracts";
import { line, type ClientIo, type Invocation } from "./command";
import { between, compact, duration, money, pretty, tokens } from "./format";
import { ApiError, ConnectError, pathOf, type ApiClient } from "./http";
import { SseParser } from "./sse";

/** How often a cluster without the live stream is asked about the task. */
export const POLL_MS = 500;

/** Failures in a row (no answer, 429, 5xx, a dropped stream) that a follow rides out, a second apart, before it gives up. */
const TRANSIENT_TOLERANCE = 10;

/** The stream sends a comment every 15 s: this long without a byte means the connection is dead, not idle. */
const STREAM_IDLE_MS = 45_000;

/** A followed task's exit code: 0 succeeded, 1 failed, 2 cancelled. */
export const OUTCOME_EXIT: Readonly<Record<string, number>> = { succeeded: 0, failed: 1, cancelled: 2 };

type Task = Pick<TaskView, "id" | "status" | "steps" | "usage" | "result" | "error" | "created_at" | "started_at" | "finished_at">;
type Usage = Task["usage"];

/** Erases the terminal's current line. */
const CLEAR = "\r\x1b[2K";

/** One step as a line of text: what ran, how it ended, what it cost, how long it took. */
export function stepLine(s: StepView): string {
  if (s.kind === "llm") {
    const text = s.content
      .map((b) => ("text" in b && typeof b.text === "string" ? b.text : "name" in b && typeof b.name === "string" ? `→ ${b.name}` : ""))
      .filter((t) => t !== "")
      .join(" ");
    return [`#${s.step}`, "llm ", `${s.model}${s.tier ? ` (${s.tier})` : ""}`, s.stop_reason ?? "-", `${tokens(s.usage.input_tokens, s.usage.output_tokens)} tok`, money(s.usage.cost_usd), duration(s.duration_ms), compact(text, 60)].join("  ");
  }
  return [`#${s.step}`, "tool", s.tool, s.ok ? "ok" : "error", duration(s.duration_ms), `${compact(s.input, 40)} → ${compact(s.output, 60)}`].join("  ");
}

/** The progress display: step, status, tokens and cost so far. */
export function progressLine(p: { steps: number; status: string; usage: Usage }): string {
  return `step ${p.steps} · ${p.status} · ${tokens(p.usage.input_tokens, p.usage.output_tokens)} tok · ${money(p.usage.cost_usd)}`;
}

/** What a person reads when the task has ended: the outcome line, then the result or the error. */
export function outcomeText(t: Task): string {
  const took = between(t.started_at ?? t.created_at, t.finished_at);
  const head = [t.status, `${t.steps} step${t.steps === 1 ? "" : "s"}`, `${tokens(t.usage.input_tokens, t.usage.output_tokens)} tok`, money(t.usage.cost_usd), ...(took !== undefined ? [duration(took)] : [])].join(" · ");
  if (t.status === "succeeded") return `${head}\n${pretty(t.result)}`;
  if (t.error) return `${head}\nerror: ${t.error.type}: ${t.error.message}`;
  return head;
}

const isTerminal = (status: string): boolean => status in OUTCOME_EXIT;

const isTransient = (err: unknown): boolean => err instanceof ConnectError || (err instanceof ApiError && (err.status === 429 || err.status >= 500));

/** What the follower has shown so far, and the one place that writes it. */
class FollowView {
  private shownStep = 0;
  private shownStatus: string | undefined;
  private progress: { steps: number; status: string; usage: Usage } | undefined;
  private drawn = false;

  constructor(
    private readonly io: ClientIo,
    /** JSON lines rather than a progress display. */
    private readonly lines: boolean,
  ) {}

  get status(): string | undefined {
    return this.shownStatus;
  }

  /** The task as just read: a line when its status changed, or the progress display. */
  task(t: Task, text: string): void {
    if (this.lines && t.status !== this.shownStatus) this.io.out(line(text));
    this.shownStatus = t.status;
    this.progress = { steps: Math.max(t.steps, this.shownStep), status: t.status, usage: { ...t.usage } };
    this.draw();
  }

  /** A step, unless it was shown already (a replayed stream sends it again). */
  step(s: StepView, text?: string): void {
    if (s.step <= this.shownStep) return;
    this.shownStep = s.step;
    if (this.lines) {
      this.io.out(line(text ?? JSON.stringify(s)));
      return;
    }
    this.clear();
    this.io.out(line(stepLine(s)));
    if (this.progress) {
      this.progress.steps = Math.max(this.progress.steps, s.step);
      if (s.kind === "llm") addUsage(this.progress.usage, s.usage);
    }
    this.draw();
  }

  /** The task has ended: the last line, and its exit code. */
  end(t: Task, text: string): number {
    this.clear();
    this.io.out(line(this.lines ? text : outcomeText(t)));
    return OUTCOME_EXIT[t.status] ?? 1;
  }

  clear(): void {
    if (this.drawn) this.io.out(CLEAR);
    this.drawn = false;
  }

  private draw(): void {
    if (this.lines || !this.progress) return;
    this.io.out(`${CLEAR}${progressLine(this.progress)}`);
    this.drawn = true;
  }
}

function addUsage(into: Usage, u: Partial<Usage>): void {
  into.input_tokens += u.input_tokens ?? 0;
  into.output_tokens += u.output_tokens ?? 0;
  into.cost_usd = Math.round((into.cost_usd + (u.cost_usd ?? 0)) * 1e8) / 1e8;
}

/** The events route is not there (a cluster older than it): follow by polling. */
class NoStream extends Error {}

/** Follows task `id` until it ends; answers its outcome's exit code. */
export async function follow(c: Invocation, id: string): Promise<number> {
  const view = new FollowView(c.io, c.json || !c.io.isTTY);
  try {
    const first = await c.api.get<Task>(pathOf("/v1/tasks", id));
    if (isTerminal(first.body.status)) {
      const steps = await c.api.get<{ steps: StepView[] }>(pathOf("/v1/tasks", id, "steps"));
      for (const s of steps.body.steps) view.step(s);
      return view.end(first.body, first.text);
    }
    view.task(first.body, first.text);
    try {
      return await followStream(c.api, c.io, id, view);
    } catch (err) {
      if (!(err instanceof NoStream)) throw err;
      return await followPolling(c.api, c.io, id, view);
    }
  } finally {
    view.clear();
  }
}

/** Reads the task's event stream, resuming it after a drop, until its terminal event. */
async function followStream(api: ApiClient, io: ClientIo, id: string, view: FollowView): Promise<number> {
  let lastId: string | undefined;
  let failures = 0;
  /** The task was read as ended: nothing is left to show but its terminal event. */
  let over = false;
  for (;;) {
    const abort = new AbortController();
    let idle = setTimeout(() => abort.abort(), STREAM_IDLE_MS);
    const alive = () => {
      clearTimeout(idle);
      idle = setTimeout(() => abort.abort(), STREAM_IDLE_MS);
    };
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream", ...(lastId !== undefined ? { "Last-Event-ID": lastId } : {}) };
      let body: ReadableStream<Uint8Array>;
      try {
        body = await api.stream(pathOf("/v1/tasks", id, "events"), headers, abort.signal);
      } catch (err) {
        // Only the route missing (`not_found`) means "no stream here"; a `task_not_found` is the answer itself.
        if (err instanceof ApiError && err.status === 404 && err.type === "not_found") throw new NoStream();
        throw err;
      }
      const parser = new SseParser();
      const decoder = new TextDecoder();
      const reader = body.getReader();
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
        alive();
        for (const e of parser.push(decoder.decode(chunk.value, { stream: true }))) {
          if (e.id !== undefined) {
            lastId = e.id;
            failures = 0;
          }
          if (e.event === "step") {
            const step = JSON.parse(e.data) as StepView;
            // The first step, or one after a stop for approval: the task runs (again); show it as it is now.
            if (!over && (view.status === "queued" || view.status === "awaiting_approval")) over = await readTask(api, id, view);
            view.step(step, e.data);
          } else if (e.event === "awaiting_approval" && !over) {
            over = await readTask(api, id, view);
          } else if (isTerminal(e.event)) {
            await reader.cancel().catch(() => undefined);
            const t = await api.get<Task>(pathOf("/v1/tasks", id));
            return view.end(t.body, t.text);
          }
        }
      }
      // The stream ended without the task's end: a replica going away. Resume where it stopped.
      if (++failures > TRANSIENT_TOLERANCE) throw new ConnectError(api.url, "the task's event stream keeps ending before the task does");
    } catch (err) {
      if (err instanceof NoStream) throw err;
      const dropped = abort.signal.aborted || isTransient(err) || err instanceof TypeError;
      if (!dropped || ++failures > TRANSIENT_TOLERANCE) throw err;
    } finally {
      clearTimeout(idle);
    }
    await io.sleep(1000);
  }
}

/**
 * Shows the task as it is now, unless it has already ended (its terminal event is still to come, and ends the
 * follow); answers whether it has.
 */
async function readTask(api: ApiClient, id: string, view: FollowView): Promise<boolean> {
  const t = await api.get<Task>(pathOf("/v1/tasks", id));
  if (isTerminal(t.body.status)) return true;
  view.task(t.body, t.text);
  return false;
}

/** Polls the task, and its steps when their count moved, until it ends. */
async function followPolling(api: ApiClient, io: ClientIo, id: string, view: FollowView): Promise<number> {
  let shownSteps = 0;
  let failures = 0;
  for (;;) {
    await io.sleep(POLL_MS);
    let task: { body: Task; text: string };
    let steps: StepView[] = [];
    try {
      task = await api.get<Task>(pathOf("/v1/tasks", id));
      if (task.body.steps > shownSteps) steps = (await api.get<{ steps: StepView[] }>(pathOf("/v1/tasks", id, "steps"))).body.steps;
      failures = 0;
    } catch (err) {
      if (!isTransient(err) || ++failures > TRANSIENT_TOLERANCE) throw err;
      await io.sleep(1000);
      continue;
    }
    for (const s of steps) view.step(s);
    shownSteps = Math.max(shownSteps, task.body.steps);
    if (isTerminal(task.body.status)) return view.end(task.body, task.text);
    view.task(task.body, task.text);
  }
}
