/**
 * `startNode`, as the package offers it: a Clawfleet node started from a program, with agents and tools
 * given in code and settings that override the environment. Every setting goes through the same
 * validation as `clawfleet start` (src/config.ts), so an invalid combination fails here, at start-up,
 * with a message naming the option.
 */
import os from "node:os";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import type { AgentDefinition } from "../src/agent/definition";
import { loadConfigOver, type Config, type LogLevel, type Role } from "../src/config";
import { ConfigError } from "../src/errors";
import { startTracing } from "../src/telemetry/tracing";
import type { ToolDefinition } from "../src/tools/tool";
import { startNode as startConfiguredNode, type ClawfleetNode, type NodeParts } from "./node";

/** What `startNode` takes. Unset settings come from the environment (README, "Environment"), then the defaults. */
export interface StartOptions {
  /** Agents defined in code (`defineAgent`), served with the agent files of `promptsDir`. @default [] */
  agents?: readonly AgentDefinition[];
  /**
   * In-process tools (`defineTool`). They run in this process's executor, so `roles` must include `executor`;
   * tools that run elsewhere are a service with the `ClawfleetTools` mixin. @default []
   */
  tools?: readonly ToolDefinition[];
  /**
   * Folders of agent files (`<name>.md`), relative to `cwd`; globs (`*`, `?`, `{a,b}`) allowed. A folder that does
   * not exist is an error unless agents are given in code. @default CLAWFLEET_PROMPTS_DIR, else "./prompts"
   */
  promptsDir?: string | readonly string[];
  /**
   * The project's Moleculer service files (the `tools` role), relative to `cwd`; globs allowed. `false`: none.
   * @default CLAWFLEET_USER_SERVICES, else "./services/*.service.{js,cjs,mjs}" (and `.ts` where tsx is installed)
   */
  userServices?: string | readonly string[] | false;
  /**
   * The roles of this process (SERVICES). Picking roles needs a distributed deployment (`transporter`,
   * `redisUrl`, `databaseUrl`). @default SERVICES, else every role
   */
  roles?: readonly Role[] | "all";
  /** HTTP port; 0 picks a free one (see `port` of the started node). @default PORT, else 3000 */
  port?: number;
  /** `nats://…`: a distributed node; needs `redisUrl` and `databaseUrl` too. @default TRANSPORTER, else embedded */
  transporter?: string;
  /** @default REDIS_URL */
  redisUrl?: string;
  /** @default DATABASE_URL */
  databaseUrl?: string;
  /** PGlite's folder in embedded mode, relative to `cwd`; `memory://` keeps nothing. @default CLAWFLEET_DATA_DIR, else "./.clawfleet" */
  dataDir?: string;
  /** Moleculer namespace; prefixes queue streams and Redis keys too. @default CLAWFLEET_NAMESPACE, else "clawfleet" */
  namespace?: string;
  /** This node's id in logs and as lease owner. @default CLAWFLEET_NODE_ID, else host-pid */
  nodeId?: string;
  /** @default LOG_LEVEL, else "info" */
  logLevel?: LogLevel;
  /** @default CLAWFLEET_LOG_FORMAT, else "json" */
  logFormat?: "json" | "pretty";
  /** Where unset settings are read from. Secrets (ANTHROPIC_API_KEY) come only from here. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** The folder relative paths resolve against. @default process.cwd() */
  cwd?: string;
}

/** A started node. */
export interface RunningNode {
  /** The node's Moleculer broker: call actions, listen to `clawfleet.task.*` events, add services. */
  readonly broker: ServiceBroker;
  /** The HTTP port actually bound (REST API on `api` nodes, health and metrics on all). */
  readonly port: number;
  readonly mode: "embedded" | "distributed";
  readonly roles: readonly Role[];
  /** Names of the agents this node serves. */
  readonly agents: readonly string[];
  /** Graceful stop: no new work, running tasks checkpointed and released, then the broker and storage. */
  stop(reason?: string): Promise<void>;
}

/** Option → the variable it overrides, and how a value is written there. */
const OPTION_VARIABLES = {
  promptsDir: "CLAWFLEET_PROMPTS_DIR",
  userServices: "CLAWFLEET_USER_SERVICES",
  roles: "SERVICES",
  port: "PORT",
  transporter: "TRANSPORTER",
  redisUrl: "REDIS_URL",
  databaseUrl: "DATABASE_URL",
  dataDir: "CLAWFLEET_DATA_DIR",
  namespace: "CLAWFLEET_NAMESPACE",
  nodeId: "CLAWFLEET_NODE_ID",
  logLevel: "LOG_LEVEL",
  logFormat: "CLAWFLEET_LOG_FORMAT",
} as const satisfies Partial<Record<keyof StartOptions, string>>;

const OTHER_OPTIONS = ["agents", "tools", "env", "cwd"] as const satisfies ReadonlyArray<keyof StartOptions>;

function asVariable(key: keyof typeof OPTION_VARIABLES, value: unknown): string {
  if (key === "userServices" && value === false) return "none";
  if (Array.isArray(value)) return value.map(String).join(key === "roles" ? "," : path.delimiter);
  return String(value);
}

/** The Config the options and the environment make, errors naming the option that caused them. */
export function configFromOptions(options: StartOptions): Config {
  const unknown = Object.keys(options).filter((k) => !(k in OPTION_VARIABLES) && !(OTHER_OPTIONS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    const known = [...Object.keys(OPTION_VARIABLES), ...OTHER_OPTIONS].join(", ");
    throw new ConfigError("startNode", `unknown option${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => `"${k}"`).join(", ")}; known: ${known}`);
  }
  const made = { agents: ["promptVersion", "systemPrompt", "defineAgent"], tools: ["run", "input", "defineTool"] } as const;
  for (const key of ["agents", "tools"] as const) {
    const list: unknown = options[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new ConfigError(`startNode option "${key}"`, "must be an array");
    const [a, b, maker] = made[key];
    list.forEach((item: unknown, i) => {
      if (item === null || typeof item !== "object" || !(a in item) || !(b in item))
        throw new ConfigError(`startNode option "${key}"`, `${key}[${i}] is not what ${maker}(…) returns: pass ${maker}({ … })`);
    });
  }
  const overrides: Record<string, string> = {};
  const set = new Map<string, keyof typeof OPTION_VARIABLES>();
  for (const [key, variable] of Object.entries(OPTION_VARIABLES) as Array<[keyof typeof OPTION_VARIABLES, string]>) {
    const value = options[key];
    if (value === undefined) continue;
    overrides[variable] = asVariable(key, value);
    set.set(variable, key);
  }
  try {
    return loadConfigOver(overrides, options.env, options.cwd ?? process.cwd());
  } catch (err) {
    const key = err instanceof ConfigError ? set.get(err.variable) : undefined;
    if (!(err instanceof ConfigError) || key === undefined) throw err;
    throw new ConfigError(`startNode option "${key}" (${err.variable})`, err.message.slice(err.variable.length + 2));
  }
}

/** Starts tracing (when configured), then the node; stopping the node flushes the traces last. */
export async function launch(config: Config, parts: NodeParts = {}): Promise<ClawfleetNode> {
  // Before the broker and any service exist, so every span of this process has a provider to go to.
  const tracing = startTracing(config, config.nodeId ?? `${os.hostname()}-${process.pid}`);
  let node: ClawfleetNode;
  try {
    node = await startConfiguredNode(config, parts);
  } catch (err) {
    await tracing.shutdown();
    throw err;
  }
  tracing.useLogger(node.broker.getLogger("cli"));
  const stopNode = node.stop.bind(node);
  // After the node: the spans of its last steps are flushed too.
  return { ...node, stop: (reason?: string, since?: number) => stopNode(reason, since).then(() => tracing.shutdown()) };
}

/**
 * Starts a Clawfleet node in this process: every role on embedded defaults (PGlite, in-process queue, the
 * simulated model without ANTHROPIC_API_KEY), or the `roles` of a distributed deployment.
 *
 * ```ts
 * const node = await startNode({ agents: [defineAgent({...})], tools: [defineTool({...})], port: 0 });
 * ```
 */
export async function startNode(options: StartOptions = {}): Promise<RunningNode> {
  const config = configFromOptions(options);
  const parts: NodeParts = { ...(options.agents ? { agents: options.agents } : {}), ...(options.tools ? { tools: options.tools } : {}) };
  let node: ClawfleetNode;
  try {
    node = await launch(config, parts);
  } catch (err) {
    if (err instanceof ConfigError && (err.variable === "tools" || err.variable === "agents")) {
      throw new ConfigError(`startNode option "${err.variable}"`, err.message.slice(err.variable.length + 2));
    }
    throw err;
  }
  return {
    broker: node.broker,
    port: node.port,
    mode: config.mode,
    roles: config.services,
    agents: node.agents.list().map((a) => a.name),
    stop: (reason?: string) => node.stop(reason),
  };
}
