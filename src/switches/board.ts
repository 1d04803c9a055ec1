/**
 * A process's view of the kill switches. Every process that acts on them (the
 * planner's claims and its calls, intake's gauge) keeps one SwitchBoard, shared
 * by the roles it runs: it reads the whole (small) switches table every
 * `refreshMs`, and at once when the `clawfleet.control.switch_changed` broadcast
 * arrives, so a change is in force cluster-wide within a second even when the
 * broadcast is lost. The store stays the truth: the board only ever replaces its
 * view by a fresh read, never by an event's payload.
 */
import type { ClaimExclusions, Switch, SwitchKind } from "../contracts";
import { messageOf } from "../errors";
import type { Logger } from "../logging";

/** How often a board reads the switches: every change reaches every board within this, plus a read. */
export const SWITCH_REFRESH_MS = 400;

/** A switch that changed between two reads: `before` is undefined for a switch set for the first time. */
export interface SwitchTransition {
  before: Switch | undefined;
  after: Switch;
}

export interface SwitchBoardDeps {
  /** Reads every switch (the store's `listSwitches`). */
  load(): Promise<Switch[]>;
  logger: Pick<Logger, "info" | "warn">;
}

export interface SwitchBoardOptions {
  /** @default SWITCH_REFRESH_MS */
  refreshMs?: number;
}

const keyOf = (kind: SwitchKind, name: string) => `${kind}\u0000${name}`;

const NONE: ClaimExclusions = Object.freeze({ agents: [], prompt_versions: [] });

export class SwitchBoard {
  private state = new Map<string, Switch>();
  private loaded = false;
  private exclusionList: ClaimExclusions = NONE;
  private current: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private users = 0;
  private readonly listeners = new Set<(t: SwitchTransition) => void>();
  /** Waits for a paused switch to lift, by switch. */
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(
    private readonly deps: SwitchBoardDeps,
    private readonly opts: SwitchBoardOptions = {},
  ) {}

  /** Starts the periodic read; each role of the process that uses the board starts it, the first one really does. */
  start(): void {
    if (this.users++ > 0) return;
    void this.refresh().catch(() => undefined);
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), this.opts.refreshMs ?? SWITCH_REFRESH_MS);
    this.timer.unref();
  }

  /** The last role to stop it stops the periodic read. */
  stop(): void {
    if (this.users === 0 || --this.users > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Reads the switches now. A call made while a read is under way gets the read after it: the one under way
   * may have started before the change the caller heard of was committed.
   */
  refresh(): Promise<void> {
    if (this.current === undefined) {
      const read = this.read().finally(() => {
        if (this.current === read) this.current = undefined;
      });
      this.current = read;
      return read;
    }
    this.next ??= this.current
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.refresh();
      });
    return this.next;
  }

  /** Resolves once the board has read the switches at least once; reads them if it never has (and rejects if that fails). */
  async whenLoaded(): Promise<void> {
    if (!this.loaded) await this.refresh();
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  isPaused(kind: SwitchKind, name: string): boolean {
    return this.state.get(keyOf(kind, name))?.paused === true;
  }

  /** The agents and prompt versions paused now: what a claim passes over. */
  exclusions(): ClaimExclusions {
    return this.exclusionList;
  }

  /** Every switch as last read, lifted ones included, by kind and name. */
  list(): Switch[] {
    return [...this.state.values()];
  }

  /** Told of each switch that changed between two reads (not of those found by the first read). */
  onChange(listener: (t: SwitchTransition) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves when the switch is not paused (at once if it is not now); rejects with `signal`'s reason when
   * it aborts first.
   */
  waitWhilePaused(kind: SwitchKind, name: string, signal?: AbortSignal): Promise<void> {
    if (!this.isPaused(kind, name)) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    const key = keyOf(kind, name);
    return new Promise<void>((resolve, reject) => {
      const waiting = this.waiters.get(key) ?? new Set<() => void>();
      this.waiters.set(key, waiting);
      const lifted = () => {
        signal?.removeEventListener("abort", aborted);
        resolve();
      };
      const aborted = () => {
        waiting.delete(lifted);
        if (waiting.size === 0 && this.waiters.get(key) === waiting) this.waiters.delete(key);
        reject(signal?.reason as Error);
      };
      waiting.add(lifted);
      signal?.addEventListener("abort", aborted, { once: true });
    });
  }

  private async read(): Promise<void> {
    let rows: Switch[];
    try {
      rows = await this.deps.load();
    } catch (err) {
      // The last view stays in force; a failing streak is logged once, and its end once.
      if (!this.failing) this.deps.logger.warn({ event: "switches.refresh_failed", err: messageOf(err) }, "could not read the kill switches; the last ones read stay in force");
      this.failing = true;
      throw err;
    }
    if (this.failing) this.deps.logger.info({ event: "switches.refresh_recovered" }, "reading the kill switches again");
    this.failing = false;
    this.apply(rows);
  }

  private apply(rows: readonly Switch[]): void {
    const first = !this.loaded;
    const next = new Map<string, Switch>();
    const changed: SwitchTransition[] = [];
    for (const after of rows) {
      const key = keyOf(after.kind, after.name);
      const before = this.state.get(key);
      next.set(key, after);
      if (!first && (before === undefined || after.version > before.version)) changed.push({ before, after });
    }
    this.state = next;
    this.loaded = true;
    const paused = rows.filter((s) => s.paused);
    this.exclusionList = paused.length === 0
      ? NONE
      : { agents: paused.filter((s) => s.kind === "agent").map((s) => s.name), prompt_versions: paused.filter((s) => s.kind === "prompt").map((s) => s.name) };
    for (const [key, waiting] of this.waiters) {
      if (next.get(key)?.paused === true) continue;
      this.waiters.delete(key);
      for (const lifted of waiting) lifted();
    }
    for (const t of changed) {
      for (const listener of this.listeners) {
        try {
          listener(t);
        } catch (err) {
          this.deps.logger.warn({ event: "switches.listener_failed", kind: t.after.kind, name: t.after.name, err: messageOf(err) }, "a kill switch listener failed");
        }
      }
    }
  }
}

const boards = new WeakMap<object, SwitchBoard>();

/** The one board of the process that `owner` (its Resources) stands for, created by the first role that asks. */
export function processSwitchBoard(owner: object, create: () => SwitchBoard): SwitchBoard {
  let board = boards.get(owner);
  if (!board) {
    board = create();
    boards.set(owner, board);
  }
  return board;
}
