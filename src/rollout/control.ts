/**
 * The rollout's control surface, run by intake: at start, each agent's file
 * version is stored and its rollout row created (a new file version is a deploy,
 * and wins); new tasks are routed between the stable version and a running
 * canary; operators start and abort canaries and read every agent's versions.
 * The judge (judge*.ts) moves a running canary on; everything here only reads
 * what it decided.
 */
import { parseAgentFile, type AgentCatalog, type AgentDefinition } from "../agent/definition";
import {
  DEFAULT_CANARY_STEPS,
  DEFAULT_MIN_TASKS_PER_STEP,
  parseParams,
  StartCanarySchema,
  type AgentSummary,
  type AgentVersionInfo,
  type AgentView,
  type CanaryEventName,
  type CanaryEventPayload,
  type Rollout,
} from "../contracts";
import { ConfigError, messageOf, ValidationError } from "../errors";
import type { Logger } from "../logging";
import type { TaskStore } from "../store/types";
import { RolloutCache } from "./cache";
import { routeVersion, type Routed } from "./router";

/** Sends a control event to every node (the broker's `broadcast`); must not throw. */
export type CanaryEventSink = <N extends CanaryEventName>(name: N, payload: CanaryEventPayload<N>) => void;

/** What a sink needs of a Moleculer broker. */
export interface Broadcaster {
  broadcast(event: string, payload: unknown): Promise<unknown> | void;
}

/** Every node hears a rollout change: each intake refreshes its routing on it. Fire and forget, like the task events. */
export function canaryEventSink(broker: Broadcaster, logger: Pick<Logger, "warn">): CanaryEventSink {
  return (name, payload) => {
    const failed = (err: unknown) => logger.warn({ event: "emit.failed", name, agent: payload.agent, err: messageOf(err) }, "control event broadcast failed");
    try {
      void Promise.resolve(broker.broadcast(name, payload)).catch(failed);
    } catch (err) {
      failed(err);
    }
  };
}

/** Between tries of the start-up sync while the store cannot be reached. */
const SYNC_RETRY_MS = 3000;

export type RolloutStore = Pick<TaskStore, "syncFileVersion" | "startCanary" | "abortCanary" | "getRollout" | "listRollouts" | "listAgentVersions">;

export interface RolloutsDeps {
  store: RolloutStore;
  agents: Pick<AgentCatalog, "get" | "list">;
  logger: Pick<Logger, "info" | "warn">;
  /** Where the canary events go, and the node named in them. @default none sent */
  events?: { sink: CanaryEventSink; node: string };
  /** @default ROLLOUT_REFRESH_MS */
  refreshMs?: number;
}

/** An agent as `intake.agents` lists it. */
export function summaryOf(a: AgentDefinition): AgentSummary {
  return {
    name: a.name,
    description: a.description,
    prompt_version: a.promptVersion,
    tools: [...a.tools],
    mcp_servers: Object.keys(a.mcpServers),
    default_tier: a.defaultTier,
    tiers: Object.fromEntries(Object.entries(a.tiers).map(([tier, t]) => [tier, t.model])),
  };
}

export function agentView(def: AgentDefinition, rollout: Rollout | null, versions: AgentVersionInfo[]): AgentView {
  const canary =
    rollout && rollout.canary_version !== null && rollout.canary_state !== "none"
      ? {
          version: rollout.canary_version,
          weight: rollout.canary_weight,
          step: rollout.step_index + 1,
          steps: rollout.steps,
          min_tasks_per_step: rollout.min_tasks_per_step,
          state: rollout.canary_state,
          started_at: rollout.canary_started_at,
          step_started_at: rollout.step_started_at,
          decided_at: rollout.decided_at,
          evidence: rollout.evidence,
        }
      : null;
  return {
    ...summaryOf(def),
    file_version: def.promptVersion,
    stable_version: rollout?.stable_version ?? def.promptVersion,
    versions,
    canary,
    revision: rollout?.revision ?? 0,
  };
}

export class Rollouts {
  readonly cache: RolloutCache;
  /** Per agent, its start-up sync: done once per process, tried again after a failure. */
  private readonly synced = new Map<string, Promise<void>>();
  private syncRetry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly deps: RolloutsDeps) {
    this.cache = new RolloutCache(() => deps.store.listRollouts(), deps.logger, deps.refreshMs);
  }

  /**
   * Syncs every agent of the files and starts refreshing. In the background: the checkpoint role may not be
   * up yet. Until the sync succeeds it is tried again every few seconds (and before any task is routed), so
   * a deploy aborts a running canary even on a cluster that takes no task meanwhile.
   */
  start(): void {
    this.stopped = false;
    this.cache.start();
    this.syncInBackground();
  }

  stop(): void {
    this.stopped = true;
    this.cache.stop();
    if (this.syncRetry) clearTimeout(this.syncRetry);
    this.syncRetry = undefined;
  }

  /** Every agent's start-up sync; rejects with the first failure (each is tried again when next needed). */
  async syncAll(): Promise<void> {
    await Promise.all(this.deps.agents.list().map((a) => this.ensureSynced(a)));
  }

  /**
   * The version a new task of `agent` runs. The agent's files version is stored first (once), so that no task
   * can carry a version the store lacks.
   */
  async route(agent: AgentDefinition, taskId: string): Promise<Routed> {
    await this.ensureSynced(agent);
    await this.cache.ensureLoaded();
    return routeVersion(this.cache.get(agent.name), agent.promptVersion, taskId);
  }

  /** Immediate reload, for a `clawfleet.control.canary_*` event. */
  onControlEvent(): Promise<void> {
    return this.cache.refresh();
  }

  async list(): Promise<AgentView[]> {
    const defs = this.deps.agents.list();
    await Promise.all(defs.map((d) => this.ensureSynced(d)));
    const rows = await this.deps.store.listRollouts();
    // What a caller is shown, new tasks are routed by from now on (a change's event may still be on its way).
    for (const r of rows) this.cache.put(r);
    const rollouts = new Map(rows.map((r) => [r.agent, r]));
    return Promise.all(defs.map(async (d) => agentView(d, rollouts.get(d.name) ?? null, await this.deps.store.listAgentVersions(d.name))));
  }

  async view(name: string): Promise<AgentView> {
    const def = this.deps.agents.get(name);
    await this.ensureSynced(def);
    const [rollout, versions] = await Promise.all([this.deps.store.getRollout(name), this.deps.store.listAgentVersions(name)]);
    // As in list(): a rollback the caller has seen here is what this intake routes by.
    if (rollout) this.cache.put(rollout);
    return agentView(def, rollout, versions);
  }

  /**
   * `POST /v1/agents/{name}/canary`: the body's agent file becomes a version (origin `canary`) and the canary
   * starts at its first step. The text must parse as an agent file named `name` (422 naming the problem).
   */
  async startCanary(name: string, body: unknown, by: string): Promise<AgentView> {
    const current = this.deps.agents.get(name);
    if (body !== undefined && (body === null || typeof body !== "object" || Array.isArray(body))) {
      throw new ValidationError("the request body must be a JSON object", { field: "body" });
    }
    const req = parseParams(StartCanarySchema, body ?? {}, "invalid canary");
    let def: AgentDefinition;
    try {
      def = parseAgentFile(req.prompt, "prompt", current.sourceDir);
    } catch (err) {
      if (err instanceof ConfigError) throw new ValidationError(`the prompt is not a valid agent file: ${err.message}`, { field: "prompt" });
      throw err;
    }
    if (def.name !== name) throw new ValidationError(`the prompt's agent file is named "${def.name}", not "${name}"`, { field: "prompt", name: def.name });
    await this.ensureSynced(current);
    const steps = req.steps ?? [...DEFAULT_CANARY_STEPS];
    const minTasks = req.min_tasks_per_step ?? DEFAULT_MIN_TASKS_PER_STEP;
    const rollout = await this.deps.store.startCanary(name, def.promptVersion, def.source, steps, minTasks, by);
    this.cache.put(rollout);
    this.deps.logger.info(
      { event: "canary.started", agent: name, version: def.promptVersion, stable_version: rollout.stable_version, weight: rollout.canary_weight, steps, by },
      `canary ${def.promptVersion} of ${name} started at ${rollout.canary_weight}% of new tasks`,
    );
    this.emit("clawfleet.control.canary_started", {
      ...this.eventBase(rollout, def.promptVersion, by),
      weight: rollout.canary_weight,
      steps: rollout.steps,
      min_tasks_per_step: rollout.min_tasks_per_step,
    });
    return this.view(name);
  }

  /** `DELETE /v1/agents/{name}/canary`: the canary's weight is 0 at once; its tasks already submitted keep their version. */
  async abortCanary(name: string, by: string): Promise<AgentView> {
    this.deps.agents.get(name);
    const rollout = await this.deps.store.abortCanary(name, by);
    this.cache.put(rollout);
    const version = rollout.canary_version ?? "";
    this.deps.logger.info({ event: "canary.aborted", agent: name, version, by }, `canary ${version} of ${name} aborted`);
    this.emit("clawfleet.control.canary_aborted", { ...this.eventBase(rollout, version, by), reason: "operator" });
    return this.view(name);
  }

  private syncInBackground(failures = 0): void {
    this.syncAll().catch((err: unknown) => {
      if (this.stopped) return;
      // Once: the checkpoint role coming up after this one is ordinary in a distributed start.
      if (failures === 0) this.deps.logger.warn({ event: "rollouts.sync_failed", err: messageOf(err) }, "could not record the agent files' versions yet; trying again");
      this.syncRetry = setTimeout(() => this.syncInBackground(failures + 1), SYNC_RETRY_MS);
      this.syncRetry.unref();
    });
  }

  private ensureSynced(agent: AgentDefinition): Promise<void> {
    let done = this.synced.get(agent.name);
    if (!done) {
      done = this.sync(agent);
      this.synced.set(agent.name, done);
      done.catch(() => {
        if (this.synced.get(agent.name) === done) this.synced.delete(agent.name);
      });
    }
    return done;
  }

  private async sync(agent: AgentDefinition): Promise<void> {
    const r = await this.deps.store.syncFileVersion(agent.name, agent.promptVersion, agent.source);
    this.cache.put(r.rollout);
    if (!r.deployed) return;
    this.deps.logger.info(
      { event: "rollout.deployed", agent: agent.name, version: agent.promptVersion, aborted_canary: r.aborted_canary },
      `agent ${agent.name}: new agent files, version ${agent.promptVersion} is stable${r.aborted_canary ? `; canary ${r.aborted_canary} aborted` : ""}`,
    );
    if (r.aborted_canary) this.emit("clawfleet.control.canary_aborted", { ...this.eventBase(r.rollout, r.aborted_canary, "deploy"), reason: "deploy" });
  }

  private eventBase(rollout: Rollout, version: string, by: string) {
    return {
      agent: rollout.agent,
      version,
      stable_version: rollout.stable_version,
      revision: rollout.revision,
      by,
      at: new Date().toISOString(),
      node: this.deps.events?.node ?? "",
    };
  }

  private emit<N extends CanaryEventName>(name: N, payload: CanaryEventPayload<N>): void {
    this.deps.events?.sink(name, payload);
  }
}
