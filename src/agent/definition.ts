/**
 * Agent definitions live in `prompts/<name>.md`: YAML front matter (tools, model
 * tiers, budgets) and the system prompt as the body. The file's content hash is
 * the `prompt_version` every task, span and metric carries.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { z } from "zod";
import { MAX_APPROVAL_TIMEOUT_SECONDS } from "../contracts";
import { AgentNotFoundError, ConfigError } from "../errors";
import { TaskBudgetsSchema, type TaskBudgets } from "../contracts";

/** How long a gated call waits for a decision when the agent file says nothing: an hour. */
export const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 3600;

const TierSchema = z.object({
  model: z.string().min(1),
  max_tokens: z.number().int().positive().max(64_000),
});

/**
 * MCP server names: the server's tools are offered as `<server>__<tool>`, so a name holds no `__` (the first
 * `__` of a tool name splits it), neither starts nor ends with `_`, and leaves room for a tool name within the
 * Messages API's 64 characters.
 */
export const MCP_SERVER_NAME = /^[a-zA-Z0-9-]+(?:_[a-zA-Z0-9-]+)*$/;
export const MCP_SERVER_NAME_MAX = 61;
/** What joins a server's name and its tool's in the name the model sees. */
export const MCP_TOOL_SEPARATOR = "__";

/** YAML writes `PORT: 8080` and `DEBUG: true` unquoted; an environment or argument takes them as text. */
const Scalar = z.union([z.string(), z.number(), z.boolean()], { error: "expected a string" }).transform(String);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Record keys checked with a message of our own (zod's own for a key is "Invalid key in record"). */
function keysMatch(valid: RegExp | ((key: string) => boolean), message: string) {
  const ok = typeof valid === "function" ? valid : (key: string) => valid.test(key);
  return (record: Record<string, unknown>, ctx: z.RefinementCtx) => {
    for (const key of Object.keys(record)) if (!ok(key)) ctx.addIssue({ code: "custom", path: [key], message });
  };
}

/** One entry of `mcp_servers`: `{command, args?, env?}` (stdio) or `{url, headers?}` (Streamable HTTP). */
const McpServerSchema = z
  .object({
    command: z.string().min(1, "command is empty").optional(),
    args: z.array(Scalar).optional(),
    env: z.record(z.string(), Scalar).superRefine(keysMatch(ENV_NAME, "environment variable names match [A-Za-z_][A-Za-z0-9_]*")).optional(),
    url: z.url({ protocol: /^https?$/, error: "url must be an http:// or https:// URL" }).optional(),
    headers: z.record(z.string(), z.string()).superRefine(keysMatch(HEADER_NAME, "not a valid HTTP header name")).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const kinds = "either {command, args?, env?} (stdio) or {url, headers?} (Streamable HTTP)";
    if (s.command !== undefined && s.url !== undefined) ctx.addIssue({ code: "custom", message: `has both command and url; an MCP server is ${kinds}` });
    else if (s.command === undefined && s.url === undefined) ctx.addIssue({ code: "custom", message: `has neither command nor url; an MCP server is ${kinds}` });
    else if (s.url !== undefined && (s.args !== undefined || s.env !== undefined))
      ctx.addIssue({ code: "custom", message: "args and env belong to a stdio server (command); a Streamable HTTP server (url) takes headers" });
    else if (s.command !== undefined && s.headers !== undefined)
      ctx.addIssue({ code: "custom", message: "headers belong to a Streamable HTTP server (url); a stdio server (command) takes args and env" });
  })
  .transform(
    (s): McpServerConfig =>
      s.command !== undefined
        ? { transport: "stdio", command: s.command, args: s.args ?? [], env: s.env ?? {} }
        : { transport: "http", url: s.url ?? "", headers: s.headers ?? {} },
  );

const McpServersSchema = z
  .record(z.string(), McpServerSchema)
  .superRefine(
    keysMatch(
      (name) => MCP_SERVER_NAME.test(name) && name.length <= MCP_SERVER_NAME_MAX,
      `MCP server names are 1-${MCP_SERVER_NAME_MAX} of [a-zA-Z0-9_-], with no "__" and no leading or trailing "_" (its tools are named <server>__<tool>)`,
    ),
  );

const FrontMatterSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
    description: z.string().default(""),
    tools: z.array(z.string()).default([]),
    mcp_servers: McpServersSchema.default({}),
    tiers: z.record(z.string(), TierSchema).refine((t) => Object.keys(t).length > 0, "at least one tier"),
    default_tier: z.string(),
    /** Per-task budgets (src/budgets): the defaults and the ceiling of a submit's; `max_daily_cost_usd` caps the agent's day. */
    budgets: TaskBudgetsSchema.extend({ max_daily_cost_usd: z.number().positive().max(1e9).optional() }).strict().default({}),
    /** `json`: the final answer is parsed as a JSON object into the task's result. */
    result: z.enum(["text", "json"]).default("text"),
    /**
     * Tiered routing: step 1 classifies the task on `classify_tier`; a task labelled `simple_label` finishes
     * on that (cheap) tier, any other escalates to `default_tier`. `instruction` says what "simple" means.
     */
    router: z
      .object({
        classify_tier: z.string(),
        simple_label: z.string().regex(/^[a-z][a-z0-9_-]*$/).default("simple"),
        instruction: z.string().default(""),
      })
      .strict()
      .optional(),
    /**
     * Approval gates (src/approvals): a call of a tool named here (or of an MCP server's, as `<server>__*`)
     * waits for an operator's decision, at most `timeout_seconds`, after which the task fails.
     */
    approval: z
      .object({
        tools: z.array(z.string().min(1)).min(1, "name at least one tool"),
        timeout_seconds: z.number().int().positive().max(MAX_APPROVAL_TIMEOUT_SECONDS).default(DEFAULT_APPROVAL_TIMEOUT_SECONDS),
      })
      .strict()
      .optional(),
    /** Model turns are streamed and their text deltas sent live on the task's event stream (README, "Live progress"). */
    stream: z.boolean({ error: "stream is true or false" }).default(false),
  })
  .strict();

export type Tier = z.infer<typeof TierSchema>;

/** An MCP server an agent file declares; relative paths in `command` and `args` are the agent file's folder's. */
export type McpServerConfig =
  | { transport: "stdio"; command: string; args: string[]; env: Record<string, string> }
  | { transport: "http"; url: string; headers: Record<string, string> };

export interface AgentDefinition {
  name: string;
  description: string;
  tools: string[];
  /** `mcp_servers`, by server name; their tools are offered as `<server>__<tool>`. */
  mcpServers: Record<string, McpServerConfig>;
  tiers: Record<string, Tier>;
  defaultTier: string;
  maxSteps: number | undefined;
  maxTokens: number | undefined;
  /** Every per-task budget of the front matter (`maxSteps` and `maxTokens` among them); `on_exhausted` always set. */
  budgets: TaskBudgets;
  /** `budgets.max_daily_cost_usd`: past it, intake refuses the agent's new tasks until 00:00 UTC. */
  maxDailyCostUsd: number | undefined;
  resultFormat: "text" | "json";
  /** Tiered routing (see `router` in the front matter); absent: every step runs on `defaultTier`. */
  router?: { classifyTier: string; simpleLabel: string; instruction: string } | undefined;
  /** Tools whose calls wait for an operator's decision (see `approval` in the front matter); absent: none do. */
  approval?: { tools: string[]; timeoutSeconds: number } | undefined;
  /** `stream: true`: model turns are streamed, their text deltas published as they come. */
  stream: boolean;
  systemPrompt: string;
  /** sha256 of the file, first 12 hex digits. */
  promptVersion: string;
  /** Absolute path of the folder the agent file was read from; undefined for an agent given as text. */
  sourceDir?: string | undefined;
  /**
   * The agent file text this was parsed from (for `defineAgent`, the equivalent file it generates):
   * `promptVersion` is its hash, and it is what the store keeps of the version (src/rollout/).
   */
  source: string;
}

/** The front matter's per-task budgets, unset ones left out, `on_exhausted` defaulting to `fail`. */
function taskBudgets(b: TaskBudgets & { max_daily_cost_usd?: number | undefined }): TaskBudgets {
  const { max_daily_cost_usd: _daily, ...perTask } = b;
  const set = Object.entries(perTask).filter(([, v]) => v !== undefined);
  return { ...(Object.fromEntries(set) as TaskBudgets), on_exhausted: b.on_exhausted ?? "fail" };
}

/** `sourceDir`: the folder the file was read from, against which its relative paths (MCP server commands) resolve. */
export function parseAgentFile(text: string, source: string, sourceDir?: string): AgentDefinition {
  const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?([\s\S]*)$/.exec(text);
  if (!m) throw new ConfigError(source, "an agent file starts with YAML front matter between '---' lines");
  let raw: unknown;
  try {
    raw = parseYaml(m[1] ?? "");
  } catch (err) {
    throw new ConfigError(source, `front matter is not valid YAML: ${(err as Error).message}`);
  }
  const fm = FrontMatterSchema.safeParse(raw);
  if (!fm.success) {
    const issue = fm.error.issues[0];
    throw new ConfigError(source, `front matter field "${issue?.path.join(".")}": ${issue?.message}`);
  }
  const d = fm.data;
  if (!(d.default_tier in d.tiers)) throw new ConfigError(source, `default_tier "${d.default_tier}" is not among the tiers`);
  if (d.router && !(d.router.classify_tier in d.tiers))
    throw new ConfigError(source, `router.classify_tier "${d.router.classify_tier}" is not among the tiers`);
  for (const tool of d.tools) {
    const server = tool.endsWith(`${MCP_TOOL_SEPARATOR}*`) ? tool.slice(0, -MCP_TOOL_SEPARATOR.length - 1) : undefined;
    if (server !== undefined && !Object.hasOwn(d.mcp_servers, server))
      throw new ConfigError(source, `tools entry "${tool}" names MCP server "${server}", which mcp_servers does not declare`);
  }
  for (const tool of d.approval?.tools ?? []) {
    if (!allows({ tools: d.tools }, tool)) throw new ConfigError(source, `approval.tools entry "${tool}" is not among the agent's tools`);
  }
  return {
    name: d.name,
    description: d.description,
    tools: d.tools,
    mcpServers: d.mcp_servers,
    tiers: d.tiers,
    defaultTier: d.default_tier,
    maxSteps: d.budgets.max_steps,
    maxTokens: d.budgets.max_tokens,
    budgets: taskBudgets(d.budgets),
    maxDailyCostUsd: d.budgets.max_daily_cost_usd,
    resultFormat: d.result,
    router: d.router && { classifyTier: d.router.classify_tier, simpleLabel: d.router.simple_label, instruction: d.router.instruction.trim() },
    approval: d.approval && { tools: d.approval.tools, timeoutSeconds: d.approval.timeout_seconds },
    stream: d.stream,
    systemPrompt: (m[2] ?? "").trim(),
    promptVersion: createHash("sha256").update(text).digest("hex").slice(0, 12),
    sourceDir: sourceDir === undefined ? undefined : path.resolve(sourceDir),
    source: text,
  };
}

/**
 * An agent defined in code rather than in a file: the front matter's fields (as the file spells them) and
 * `prompt`, the system prompt. Validated exactly as an agent file is.
 */
export type AgentSpec = z.input<typeof FrontMatterSchema> & {
  /** The system prompt: an agent file's body. */
  prompt: string;
};

/** Plain data with object keys sorted, so the same agent always serializes, and hashes, the same. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k, canonical(v)]));
}

/**
 * An agent from an object, validated as an agent file is (errors name `defineAgent("<name>")`). Its
 * `prompt_version` is the content hash of the equivalent agent file: the fields in canonical order, then the
 * prompt. `dir` plays the agent file's folder: relative paths in `mcp_servers` resolve against it (without
 * it, against the working directory).
 */
export function defineAgent(spec: AgentSpec, dir?: string): AgentDefinition {
  const { prompt, ...fields } = spec as AgentSpec & Record<string, unknown>;
  const source = `defineAgent(${JSON.stringify(typeof fields.name === "string" ? fields.name : "?")})`;
  if (typeof prompt !== "string") throw new ConfigError(source, "prompt (the system prompt) must be a string");
  const text = `---\n${stringifyYaml(canonical(fields))}---\n${prompt.trim()}\n`;
  return parseAgentFile(text, source, dir);
}

/** Loads every `*.md` in the prompts folder once; lookups are by agent name. */
export class AgentCatalog {
  private readonly agents = new Map<string, AgentDefinition>();

  constructor(definitions: readonly AgentDefinition[]) {
    for (const d of definitions) this.agents.set(d.name, d);
  }

  static load(dir: string): AgentCatalog {
    if (!fs.existsSync(dir)) throw new ConfigError("CLAWFLEET_PROMPTS_DIR", `folder ${dir} does not exist`);
    const defs = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith(".md"))
      .sort()
      .map((f) => {
        const file = path.join(dir, f);
        const def = parseAgentFile(fs.readFileSync(file, "utf8"), file, dir);
        if (def.name !== path.basename(f, ".md")) throw new ConfigError(file, `name "${def.name}" must match the file name`);
        return def;
      });
    return new AgentCatalog(defs);
  }

  get(name: string): AgentDefinition {
    const def = this.agents.get(name);
    if (!def) throw new AgentNotFoundError(`unknown agent "${name}"`, { agent: name });
    return def;
  }

  has(name: string): boolean {
    return this.agents.has(name);
  }

  list(): AgentDefinition[] {
    return [...this.agents.values()];
  }
}

/**
 * Whether the agent's `tools:` allow-list lets it run `name`: listed by name, or offered by an MCP server the
 * list names as `<server>__*`. What no entry allows is never run (toolDispatch.ts, and the executor again).
 */
export function allows(agent: Pick<AgentDefinition, "tools">, name: string): boolean {
  return agent.tools.some((entry) => {
    if (entry === name) return true;
    if (!entry.endsWith("__*")) return false;
    const prefix = entry.slice(0, -1);
    return name.length > prefix.length && name.startsWith(prefix);
  });
}
