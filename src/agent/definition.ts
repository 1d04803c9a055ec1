/**
 * Agent definitions live in `prompts/<name>.md`: YAML front matter (tools, model
 * tiers, budgets) and the system prompt as the body. The file's content hash is
 * the `prompt_version` every task, span and metric carries.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { AgentNotFoundError, ConfigError } from "../errors";

const TierSchema = z.object({
  model: z.string().min(1),
  max_tokens: z.number().int().positive().max(64_000),
});

const FrontMatterSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
    description: z.string().default(""),
    tools: z.array(z.string()).default([]),
    tiers: z.record(z.string(), TierSchema).refine((t) => Object.keys(t).length > 0, "at least one tier"),
    default_tier: z.string(),
    budgets: z
      .object({
        max_steps: z.number().int().positive().optional(),
        max_tokens: z.number().int().positive().optional(),
      })
      .default({}),
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
  })
  .strict();

export type Tier = z.infer<typeof TierSchema>;

export interface AgentDefinition {
  name: string;
  description: string;
  tools: string[];
  tiers: Record<string, Tier>;
  defaultTier: string;
  maxSteps: number | undefined;
  maxTokens: number | undefined;
  resultFormat: "text" | "json";
  /** Tiered routing (see `router` in the front matter); absent: every step runs on `defaultTier`. */
  router?: { classifyTier: string; simpleLabel: string; instruction: string } | undefined;
  systemPrompt: string;
  /** sha256 of the file, first 12 hex digits. */
  promptVersion: string;
}

export function parseAgentFile(text: string, source: string): AgentDefinition {
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
  return {
    name: d.name,
    description: d.description,
    tools: d.tools,
    tiers: d.tiers,
    defaultTier: d.default_tier,
    maxSteps: d.budgets.max_steps,
    maxTokens: d.budgets.max_tokens,
    resultFormat: d.result,
    router: d.router && { classifyTier: d.router.classify_tier, simpleLabel: d.router.simple_label, instruction: d.router.instruction.trim() },
    systemPrompt: (m[2] ?? "").trim(),
    promptVersion: createHash("sha256").update(text).digest("hex").slice(0, 12),
  };
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
        const def = parseAgentFile(fs.readFileSync(file, "utf8"), file);
        if (def.name !== path.basename(f, ".md")) throw new ConfigError(file, `name "${def.name}" must match the file name`);
        return def;
      });
    return new AgentCatalog(defs);
  }

  get(name: string): AgentDefinition {
    const def = this.agents.get(name);
    if (!def) throw new AgentNotFoundError(`unknown agent "${name}"`, { agent: name, known: [...this.agents.keys()] });
    return def;
  }

  has(name: string): boolean {
    return this.agents.has(name);
  }

  list(): AgentDefinition[] {
    return [...this.agents.values()];
  }
}
