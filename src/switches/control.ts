/**
 * Setting a kill switch, intake's side (README, "Kill switches"): validate, store
 * the change with its history row, log it with who made it, and broadcast it so
 * every SwitchBoard reads the switches at once. Then what the change asks of the
 * tasks already in the store:
 * - an agent or prompt version lifted: a wake-up for each of its queued tasks
 *   (their own were spent while it was paused);
 * - an agent or prompt version paused with `in_flight: abort`: its running tasks
 *   are cancelled, now and once more after every board has surely seen the pause
 *   (a planner a moment behind may have claimed one meanwhile).
 * Tool and model aborts are the planners' (src/switches/gate.ts): only a planner
 * knows which of its tasks wait at, or are inside, a call.
 */
import type { AgentCatalog } from "../agent/definition";
import {
  parseParams,
  SetSwitchSchema,
  SWITCH_KINDS,
  SwitchKindSchema,
  SwitchScopeSchema,
  type Switch,
  type SwitchChange,
  type SwitchChangedEvent,
  type SwitchKind,
  type TaskScope,
  type WakeUp,
} from "../contracts";
import { AgentNotFoundError, messageOf, RouteNotFoundError, TaskFinishedError, ValidationError } from "../errors";
import type { Logger } from "../logging";
import type { TaskStore } from "../store/types";
import { SWITCH_REFRESH_MS } from "./board";

/** Wake-ups a lift publishes at most; past that, the reaper's sweep of stale queued tasks wakes the rest. */
export const LIFT_WAKE_LIMIT = 10_000;
/** Running tasks an abort cancels at most per sweep. */
const ABORT_LIMIT = 10_000;
/** Cancels (or wake-ups) under way at once. */
const PARALLEL = 16;
/** When the second abort sweep runs: after every board has read the pause (its refresh, plus a read's time). */
const SECOND_SWEEP_MS = 2 * SWITCH_REFRESH_MS + 200;

export interface SwitchControlDeps {
  store: Pick<TaskStore, "setSwitch" | "listSwitches" | "listSwitchChanges" | "tasksOfScope" | "touchWakeup">;
  agents: Pick<AgentCatalog, "has">;
  wakeUps: { publish(w: WakeUp): Promise<void> };
  /** Cancels a task (intake's `cancelTask`), as `by`, for `reason`. */
  cancel(taskId: string, by: string, reason: string): Promise<unknown>;
  /** Broadcasts `clawfleet.control.switch_changed`; must not throw. */
  announce(event: SwitchChangedEvent): void;
  logger: Pick<Logger, "info" | "warn">;
  /** This node, named in the event. */
  node: string;
}

const isTaskScope = (s: { kind: SwitchKind; name: string }): s is TaskScope => s.kind === "agent" || s.kind === "prompt";

/**
 * Runs `fn` over `items`, `PARALLEL` at a time: each of the `PARALLEL` goes on to the next item as soon as it is
 * done, so one slow item (a cancel waiting out a cut-off planner's ack) holds up one of them, not a batch. The
 * first failure is thrown at once; the items under way go on, and none starts after it.
 */
async function each<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      try {
        await fn(items[next++] as T);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
}

export class SwitchControl {
  constructor(private readonly deps: SwitchControlDeps) {}

  /** Every switch ever set, lifted ones included. */
  list(): Promise<Switch[]> {
    return this.deps.store.listSwitches();
  }

  /** The newest changes first. */
  history(limit: number, kind?: SwitchKind, name?: string): Promise<SwitchChange[]> {
    return this.deps.store.listSwitchChanges(limit, { ...(kind !== undefined ? { kind } : {}), ...(name !== undefined ? { name } : {}) });
  }

  /**
   * Sets switch `kind`/`name` as `body` says (`{"paused", "in_flight"?}`), as `by`. An unknown kind is a 404
   * (`not_found`); a name the kind cannot have or a bad body is a 422 naming the field; pausing an agent this
   * node does not know is a 404 (`agent_not_found`). Answers the switch as stored.
   */
  async set(kind: string, name: string, body: unknown, by: string): Promise<Switch> {
    if (!SwitchKindSchema.safeParse(kind).success) {
      throw new RouteNotFoundError(`no switch kind ${JSON.stringify(kind.slice(0, 64))}: the kinds are ${SWITCH_KINDS.join(", ")}`, { kind: kind.slice(0, 64) });
    }
    const scope = parseParams(SwitchScopeSchema, { kind, name }, "invalid switch");
    if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new ValidationError('the request body must be a JSON object: {"paused": true|false, "in_flight"?: "drain"|"abort"}', { field: "body" });
    }
    const wanted = parseParams(SetSwitchSchema, body, "invalid switch");
    if (scope.kind === "agent" && wanted.paused && !this.deps.agents.has(scope.name)) {
      throw new AgentNotFoundError(`unknown agent "${scope.name}"`, { agent: scope.name });
    }
    const sw = await this.deps.store.setSwitch({ ...scope, paused: wanted.paused, in_flight: wanted.in_flight ?? "drain", by });
    this.deps.logger.info(
      { event: "switch.changed", kind: sw.kind, name: sw.name, paused: sw.paused, in_flight: sw.in_flight, by, version: sw.version },
      `kill switch ${sw.kind}/${sw.name} ${sw.paused ? `paused (${sw.in_flight})` : "lifted"} by ${by}`,
    );
    this.deps.announce({ ...sw, node: this.deps.node });
    if (isTaskScope(sw)) {
      if (!sw.paused) await this.wakeQueued(sw);
      else if (sw.in_flight === "abort") {
        await this.abortRunning(sw);
        setTimeout(() => void this.abortAgain(sw), SECOND_SWEEP_MS).unref();
      }
    }
    return sw;
  }

  private async wakeQueued(sw: Switch & TaskScope): Promise<void> {
    try {
      const ids = await this.deps.store.tasksOfScope({ kind: sw.kind, name: sw.name }, "queued", LIFT_WAKE_LIMIT);
      await each(ids, (taskId) => this.deps.wakeUps.publish({ taskId, reason: "released" }));
      if (ids.length > 0) await this.deps.store.touchWakeup(ids);
      this.deps.logger.info({ event: "switch.woken", kind: sw.kind, name: sw.name, tasks: ids.length }, `woke ${ids.length} queued task(s) of ${sw.kind} ${sw.name}`);
    } catch (err) {
      // The switch is lifted and every board will see it: a lost wake-up only waits for the reaper's sweep.
      this.deps.logger.warn({ event: "switch.wake_failed", kind: sw.kind, name: sw.name, err: messageOf(err) }, "could not wake the queued tasks of a lifted switch; the reaper will");
    }
  }

  private async abortRunning(sw: Switch & TaskScope): Promise<void> {
    const reason = `kill switch ${sw.kind}/${sw.name} paused with in_flight=abort`;
    let ids: string[];
    try {
      ids = await this.deps.store.tasksOfScope({ kind: sw.kind, name: sw.name }, "running", ABORT_LIMIT);
    } catch (err) {
      this.deps.logger.warn({ event: "switch.abort_failed", kind: sw.kind, name: sw.name, err: messageOf(err) }, "could not list the running tasks to cancel");
      return;
    }
    if (ids.length === 0) return;
    this.deps.logger.info({ event: "switch.aborting", kind: sw.kind, name: sw.name, by: sw.updated_by, tasks: ids.length }, `cancelling ${ids.length} running task(s) of ${sw.kind} ${sw.name}`);
    await each(ids, async (taskId) => {
      try {
        await this.deps.cancel(taskId, sw.updated_by, reason);
      } catch (err) {
        // Finished meanwhile: nothing left to stop.
        if (err instanceof TaskFinishedError) return;
        this.deps.logger.warn({ taskId, event: "switch.abort_failed", kind: sw.kind, name: sw.name, err: messageOf(err) }, "could not cancel a task of a paused switch");
      }
    });
  }

  /** The second sweep, only while the switch is still the one this change set. */
  private async abortAgain(sw: Switch & TaskScope): Promise<void> {
    try {
      const now = (await this.deps.store.listSwitches()).find((s) => s.kind === sw.kind && s.name === sw.name);
      if (now?.version !== sw.version) return;
    } catch (err) {
      this.deps.logger.warn({ event: "switch.abort_failed", kind: sw.kind, name: sw.name, err: messageOf(err) }, "could not re-read the switch for its second abort sweep");
      return;
    }
    await this.abortRunning(sw);
  }
}
