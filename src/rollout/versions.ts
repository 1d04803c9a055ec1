/**
 * A task runs the prompt version it was submitted with (`prompt_version`, pinned
 * by intake), on every attempt, resume and redrive, whatever agent files the
 * planner that picks it up was deployed with. The definition of (agent,
 * version) is the catalog's when the versions match, else the stored agent file
 * text parsed again, against the catalog agent's folder (so relative MCP server
 * paths still resolve). Versions are content hashes, so a parsed one is cached
 * for good: it can never go stale.
 */
import { parseAgentFile, type AgentCatalog, type AgentDefinition } from "../agent/definition";
import type { TaskRecord } from "../contracts";
import { AgentVersionNotFoundError, ConfigError } from "../errors";
import type { TaskStore } from "../store/types";

export type VersionStore = Pick<TaskStore, "getAgentVersion" | "listAgentVersions">;

/** Parsed versions kept per catalog; far more than an agent has in use at once. */
const MAX_CACHED = 256;

export class AgentVersions {
  private readonly parsed = new Map<string, AgentDefinition>();

  constructor(private readonly catalog: Pick<AgentCatalog, "get">) {}

  /**
   * The definition a task of `agent` pinned to `version` runs. AgentNotFoundError for an agent this node does
   * not serve; AgentVersionNotFoundError (not retryable) for a version neither the files nor the store hold,
   * or one whose stored text no longer reads as an agent file of that name.
   *
   * `createdAt`: the task's creation. A task older than every version the store holds of its agent was
   * submitted before versions were stored (a database from before migration 008): it has nothing else to
   * run, so it runs the files' version.
   */
  async resolve(store: VersionStore, agent: string, version: string, createdAt?: string): Promise<AgentDefinition> {
    const current = this.catalog.get(agent);
    if (current.promptVersion === version) return current;
    const key = `${agent}@${version}`;
    const cached = this.parsed.get(key);
    if (cached) return cached;
    const stored = await store.getAgentVersion(agent, version);
    if (!stored) {
      if (await this.predatesVersions(store, agent, createdAt)) return current;
      throw new AgentVersionNotFoundError(`agent ${agent} has no version ${version}: neither its agent files nor the store hold it`, { agent, version });
    }
    const def = this.parse(agent, version, stored.source, current.sourceDir);
    if (this.parsed.size >= MAX_CACHED) {
      const oldest = this.parsed.keys().next().value;
      if (oldest !== undefined) this.parsed.delete(oldest);
    }
    this.parsed.set(key, def);
    return def;
  }

  private parse(agent: string, version: string, source: string, sourceDir: string | undefined): AgentDefinition {
    let def: AgentDefinition;
    try {
      def = parseAgentFile(source, `agent ${agent} version ${version}`, sourceDir);
    } catch (err) {
      const reason = err instanceof ConfigError ? err.message : String(err);
      throw new AgentVersionNotFoundError(`the stored version ${version} of agent ${agent} does not read as an agent file here: ${reason}`, { agent, version, reason: "unreadable" });
    }
    if (def.name !== agent || def.promptVersion !== version) {
      throw new AgentVersionNotFoundError(`the stored version ${version} of agent ${agent} is the text of ${def.name}@${def.promptVersion}`, { agent, version, reason: "mismatch" });
    }
    return def;
  }

  private async predatesVersions(store: VersionStore, agent: string, createdAt: string | undefined): Promise<boolean> {
    const versions = await store.listAgentVersions(agent);
    if (versions.length === 0) return true;
    if (createdAt === undefined) return false;
    const first = Math.min(...versions.map((v) => Date.parse(v.first_seen)));
    return Date.parse(createdAt) < first;
  }
}

/** One resolver per catalog: its cache serves every attempt of the process. */
const resolvers = new WeakMap<object, AgentVersions>();

export function versionsOf(catalog: Pick<AgentCatalog, "get">): AgentVersions {
  let r = resolvers.get(catalog);
  if (!r) {
    r = new AgentVersions(catalog);
    resolvers.set(catalog, r);
  }
  return r;
}

/** The definition the task is pinned to (see `AgentVersions.resolve`): what every attempt of it runs. */
export function pinnedAgent(
  deps: { agents: Pick<AgentCatalog, "get">; store: VersionStore },
  task: Pick<TaskRecord, "agent" | "prompt_version" | "created_at">,
): Promise<AgentDefinition> {
  return versionsOf(deps.agents).resolve(deps.store, task.agent, task.prompt_version, task.created_at);
}
