/**
 * A node's agents: every agent file of every prompts folder (CLAWFLEET_PROMPTS_DIR, several allowed) and
 * the agents given in code (`startNode({ agents })`). One name, one definition: a name found twice is a
 * start-up error naming both places, never a silent pick.
 */
import fs from "node:fs";
import { AgentCatalog, type AgentDefinition } from "../src/agent/definition";
import type { Config, Role } from "../src/config";
import { ConfigError } from "../src/errors";

const VARIABLE = "CLAWFLEET_PROMPTS_DIR";

/** Roles that look agents up: a node with none of them needs no agent at all (a `tools` node). */
const AGENT_ROLES: readonly Role[] = ["api", "intake", "planner", "executor", "rate-gateway"];

export function loadAgents(config: Config, defined: readonly AgentDefinition[] = []): AgentCatalog {
  const needsAgents = config.services.some((r) => AGENT_ROLES.includes(r));
  const where = new Map<string, string>();
  const all: AgentDefinition[] = [];
  const add = (def: AgentDefinition, from: string, variable = VARIABLE) => {
    const seen = where.get(def.name);
    if (seen !== undefined) throw new ConfigError(variable, `agent "${def.name}" is defined twice: in ${seen} and in ${from}`);
    where.set(def.name, from);
    all.push(def);
  };
  for (const dir of config.promptsDirs) {
    if (!fs.existsSync(dir)) {
      // Agents given in code need no folder, nor does a node whose roles never look an agent up.
      if (defined.length > 0 || !needsAgents) continue;
      throw new ConfigError(VARIABLE, `folder ${dir} does not exist (agent files go there: <name>.md)`);
    }
    for (const def of AgentCatalog.load(dir).list()) add(def, `${dir}/${def.name}.md`);
  }
  defined.forEach((def, i) => add(def, `agents[${i}] given to startNode`, "agents"));
  return new AgentCatalog(all);
}
