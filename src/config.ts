/**
 * The one place that reads the environment. Everything else receives a typed,
 * validated `Config`. Invalid combinations fail at start-up with a message that
 * names the variable and says what to do.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { ConfigError } from "./errors";
import { DEFAULT_PRICES, PricesSchema, type ModelPrice } from "./llm/pricing";
import { projectRoot } from "./paths";
import { RateLimitTableSchema, type RateLimitTable } from "./ratelimit/limits";
import { TenantQuotaTableSchema, type TenantQuotaSettings } from "./tenancy/quotas";
import { parseWebhookSecrets, type WebhookSettings } from "./webhooks/settings";

/** `tools` runs only the project's own Moleculer services (CLAWFLEET_USER_SERVICES); every other role is Clawfleet's. */
export const ROLES = ["api", "intake", "planner", "executor", "rate-gateway", "checkpoint", "metrics", "tools"] as const;
export type Role = (typeof ROLES)[number];

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  /** HTTP port of this process (REST API on `api` nodes, health and metrics everywhere). @default 3000 */
  readonly port: number;
  /** `embedded` when no TRANSPORTER is set: one process, PGlite, in-process queue/leases/buckets. */
  readonly mode: "embedded" | "distributed";
  readonly transporter: string | undefined;
  readonly redisUrl: string | undefined;
  readonly databaseUrl: string | undefined;
  /** Named (prepared) statements on Postgres; off for a pooler that cannot keep them. @default true */
  readonly pgPreparedStatements: boolean;
  /** Plain checkpoints of concurrent tasks committed together on Postgres (src/store/checkpointBatch.ts). @default true */
  readonly pgGroupCommit: boolean;
  /** Roles this process runs. @default every role */
  readonly services: readonly Role[];
  /** PGlite data directory in embedded mode. `memory://` keeps nothing on disk. @default ./.clawfleet */
  readonly dataDir: string;
  /** Provider key; only the rate-gateway uses it. Unset: the built-in simulated model serves. */
  readonly anthropicApiKey: string | undefined;
  /** The SDK's own override of the provider address (points at `clawfleet sim` for load tests). */
  readonly anthropicBaseUrl: string | undefined;
  readonly logLevel: LogLevel;
  /** `json` (one object per line, the production format) or `pretty`. @default json */
  readonly logFormat: "json" | "pretty";
  /** OTLP/HTTP base address: traces are exported (as `<endpoint>/v1/traces`) only when it is set. */
  readonly otlpEndpoint: string | undefined;
  /** Clawfleet's own Prometheus series; `off` (CLAWFLEET_METRICS) only to measure their overhead. @default true */
  readonly metricsEnabled: boolean;
  /** Moleculer namespace; also prefixes queue streams and Redis keys. @default clawfleet */
  readonly namespace: string;
  readonly nodeId: string | undefined;
  /**
   * Folders of agent files (`*.md`), in order: CLAWFLEET_PROMPTS_DIR is a list separated by the OS path
   * delimiter (`:`, `;` on Windows) whose entries may be globs (`*`, `?`, `{a,b}`). A glob names the folders
   * that exist; a plain entry is kept as written, so a missing one is reported. @default ["./prompts"]
   */
  readonly promptsDirs: readonly string[];
  /** The first of `promptsDirs`, for loaders that read one folder. */
  readonly promptsDir: string;
  /** The project's own Moleculer services, run by the `tools` role (every role in embedded mode). */
  readonly userServices: {
    /**
     * What CLAWFLEET_USER_SERVICES names (absolute; same list and glob rules as the prompts), or `none`.
     * @default ./services/*.service.{js,cjs,mjs}, and `.ts` where tsx is installed
     */
    readonly patterns: readonly string[];
    /** False for the default patterns: then Clawfleet's own `services/` folder (its roles) is never taken for the project's. */
    readonly explicit: boolean;
    /** The files the patterns match, sorted and without duplicates. */
    readonly files: readonly string[];
  };
  readonly planner: {
    /**
     * Tasks one planner process runs at once. Sized for I/O-bound work: a task in flight mostly waits on its
     * model call and costs little memory (BENCHMARKS.md, "Concurrency"), so `maxRssBytes` is the real bound. @default 2000
     */
    readonly slots: number;
    /** Above this resident set size (bytes) the planner takes no new wake-up until it is below again; 0 is no cap. @default 1536 MiB */
    readonly maxRssBytes: number;
    /** Maximum steps (LLM calls + tool calls) when an agent does not set its own. @default 40 */
    readonly defaultMaxSteps: number;
  };
  readonly lease: {
    /** Lease time-to-live. A killed planner's task is free again at most this long after the kill. @default 5000 */
    readonly ttlMs: number;
    /** Heartbeat period. @default ttlMs / 3 */
    readonly renewMs: number;
  };
  readonly reaper: {
    /** How often the reaper looks for orphaned tasks. @default 1000 */
    readonly intervalMs: number;
    /** A `queued` task whose wake-up is older than this while the queue is empty gets a new one. @default 5000 */
    readonly queuedAfterMs: number;
  };
  readonly canaryJudge: {
    /** How often the canary judge (one intake of the cluster) looks at running canaries. @default 1000 */
    readonly intervalMs: number;
  };
  readonly retries: {
    /** Attempts (lease acquisitions) before a task is failed and dead-lettered. @default 5 */
    readonly maxAttempts: number;
    /** Backoff after a task's first failed attempt; it doubles per attempt, up to a minute. @default 1000 */
    readonly backoffMs: number;
  };
  readonly tools: {
    /**
     * Calls of one side-effect tool step (one idempotency key) whose outcome stayed unknown (timeout, the
     * tool's node lost mid-call) before the task fails with `tool_outcome_unknown` instead of asking again. @default 5
     */
    readonly maxUnknownOutcomes: number;
  };
  /** SIGTERM grace period; fits Kubernetes' default 30 s. @default 25000 */
  readonly shutdownGraceMs: number;
  readonly health: {
    /**
     * `/health/live` fails while the event loop was blocked longer than this at once within the last
     * liveness window (10 s). @default 10000
     */
    readonly maxLoopBlockMs: number;
    /**
     * A planner with tasks in flight and no progress (no wake-up taken, step checkpointed or task settled)
     * for this long is stalled, and `/health/ready` answers 503. Longer than any legitimate single step
     * (a tool call times out at 120 s). @default 300000
     */
    readonly plannerStallMs: number;
  };
  /** Fault injection for drills and crash tests; every fault is off by default. */
  readonly faults: {
    /**
     * Probability in [0, 1] that intake skips publishing a task's wake-up after committing it,
     * as if the process died between the commit and the publish; the reaper must find the task. @default 0
     */
    readonly dropWakeups: number;
  };
  /** The rate gateway's buckets (invariant 5, docs/invariants.md). */
  readonly rateLimits: {
    /**
     * Limits per model, optionally partitioned per agent tier. A model without an entry takes the limits the
     * provider reports in its `anthropic-ratelimit-*-limit` headers; those also tighten configured ones. @default {}
     */
    readonly limits: RateLimitTable;
    /** Length of a limit's "minute"; benchmarks shrink it. @default 60000 */
    readonly windowMs: number;
    /** Longest a call waits in the gateway's priority queue before a retryable `rate_limited` with `retryAfter`. @default 300000 */
    readonly maxWaitMs: number;
  };
  /**
   * Per-tenant quotas, all off by default: running tasks (honoured when a planner claims) and submissions
   * per second with a burst (intake answers 429 over it); CLAWFLEET_TENANT_QUOTAS overrides them per tenant.
   */
  readonly tenants: TenantQuotaSettings;
  /** USD per million tokens, per model: the built-in table with `CLAWFLEET_PRICES` entries over it. */
  readonly prices: Readonly<Record<string, ModelPrice>>;
  /** Settings of the in-process simulated model (embedded mode without an API key). */
  readonly sim: SimConfig;
  /** REST API authentication (README, "Authentication and tenants"). */
  readonly auth: {
    /** CLAWFLEET_AUTH. Off: every request is tenant `default` with every scope. @default off embedded, on distributed */
    readonly enabled: boolean;
    /** CLAWFLEET_ADMIN_KEY: a secret that acts as an `admin` key of tenant `default`, to create the first keys. Never logged. */
    readonly adminKey: string | undefined;
  };
  /** Completion webhooks (README, "Webhooks"): signing secrets, the SSRF guard's one switch, timeouts and retries. */
  readonly webhooks: WebhookSettings;
}

/** The simulated model's settings; `clawfleet sim` reads only these (`loadSimConfig`). */
export interface SimConfig {
  /** Fixed delay before each answer. @default 0 */
  readonly latencyMs: number;
  /** Fraction of answers that are injected 529/500 failures. @default 0 */
  readonly failureRate: number;
  /**
   * Modules exporting scripted policies (`routes`), absolute: CLAWFLEET_SIM_POLICIES, a list with the
   * same rules as CLAWFLEET_PROMPTS_DIR (OS path delimiter, globs, relative to the working directory).
   * Agents none of them plays get the generic policy. @default []
   */
  readonly policies: readonly string[];
}

/** A number from a variable: `def` when unset or empty, else a clear error naming the variable and the range. */
const numberFrom = (name: string, def: number, range: { min: number; max?: number; integer: boolean }) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === "") return def;
      const n = Number(v);
      const { min, max = Infinity, integer } = range;
      if (!(integer ? Number.isInteger(n) : Number.isFinite(n)) || n < min || n > max) {
        const want = integer ? `an integer >= ${min}` : `a number in [${min}, ${max}]`;
        ctx.addIssue({ code: "custom", message: `${name} must be ${want}, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });
const intFrom = (name: string, def: number, min = 0) => numberFrom(name, def, { min, integer: true });
const numFrom = (name: string, def: number, min: number, max: number) => numberFrom(name, def, { min, max, integer: false });

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

const urlWith = (name: string, protocols: readonly string[]) =>
  optionalString.refine((v) => v === undefined || protocols.some((p) => v.startsWith(p)), {
    message: `${name} must start with ${protocols.join(" or ")}`,
  });

/** A JSON value checked by `schema`; unset or empty is `def`. */
const jsonFrom = <S extends z.ZodType>(name: string, schema: S, def: z.output<S>) =>
  z
    .string()
    .optional()
    .transform((v, ctx): z.output<S> => {
      if (v === undefined || v.trim() === "") return def;
      let raw: unknown;
      try {
        raw = JSON.parse(v);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: `${name} is not valid JSON: ${(err as Error).message}` });
        return z.NEVER;
      }
      const parsed = schema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        ctx.addIssue({ code: "custom", message: `${name}: ${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}` });
        return z.NEVER;
      }
      return parsed.data;
    });

const EnvSchema = z.object({
  PORT: intFrom("PORT", 3000, 0),
  TRANSPORTER: urlWith("TRANSPORTER", ["nats://", "redis://", "tcp://"]),
  REDIS_URL: urlWith("REDIS_URL", ["redis://", "rediss://"]),
  DATABASE_URL: urlWith("DATABASE_URL", ["postgres://", "postgresql://"]),
  SERVICES: optionalString,
  CLAWFLEET_DATA_DIR: optionalString,
  ANTHROPIC_API_KEY: optionalString,
  ANTHROPIC_BASE_URL: urlWith("ANTHROPIC_BASE_URL", ["http://", "https://"]),
  LOG_LEVEL: z.enum(LOG_LEVELS).optional(),
  CLAWFLEET_LOG_FORMAT: z.enum(["json", "pretty"]).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: urlWith("OTEL_EXPORTER_OTLP_ENDPOINT", ["http://", "https://"]),
  CLAWFLEET_METRICS: z.enum(["on", "off"]).optional(),
  CLAWFLEET_NAMESPACE: optionalString.refine((v) => v === undefined || /^[A-Za-z0-9_-]{1,64}$/.test(v), {
    message: "CLAWFLEET_NAMESPACE may hold only letters, digits, '_' and '-' (at most 64)",
  }),
  CLAWFLEET_NODE_ID: optionalString,
  CLAWFLEET_PROMPTS_DIR: optionalString,
  CLAWFLEET_USER_SERVICES: optionalString,
  // Sized for I/O-bound work: 2,000 tasks in flight measured in one planner (BENCHMARKS.md, "Concurrency").
  CLAWFLEET_PLANNER_SLOTS: intFrom("CLAWFLEET_PLANNER_SLOTS", 2000, 1),
  CLAWFLEET_PLANNER_MAX_RSS_MB: intFrom("CLAWFLEET_PLANNER_MAX_RSS_MB", 1536, 0),
  CLAWFLEET_MAX_STEPS: intFrom("CLAWFLEET_MAX_STEPS", 40, 1),
  CLAWFLEET_LEASE_TTL_MS: intFrom("CLAWFLEET_LEASE_TTL_MS", 5000, 500),
  CLAWFLEET_LEASE_RENEW_MS: intFrom("CLAWFLEET_LEASE_RENEW_MS", 0, 0),
  CLAWFLEET_REAPER_INTERVAL_MS: intFrom("CLAWFLEET_REAPER_INTERVAL_MS", 1000, 100),
  CLAWFLEET_REAPER_QUEUED_AFTER_MS: intFrom("CLAWFLEET_REAPER_QUEUED_AFTER_MS", 5000, 100),
  CLAWFLEET_CANARY_JUDGE_INTERVAL_MS: intFrom("CLAWFLEET_CANARY_JUDGE_INTERVAL_MS", 1000, 50),
  CLAWFLEET_MAX_ATTEMPTS: intFrom("CLAWFLEET_MAX_ATTEMPTS", 5, 1),
  CLAWFLEET_RETRY_BACKOFF_MS: intFrom("CLAWFLEET_RETRY_BACKOFF_MS", 1000, 0),
  CLAWFLEET_TOOL_MAX_UNKNOWN_OUTCOMES: intFrom("CLAWFLEET_TOOL_MAX_UNKNOWN_OUTCOMES", 5, 1),
  CLAWFLEET_SHUTDOWN_GRACE_MS: intFrom("CLAWFLEET_SHUTDOWN_GRACE_MS", 25000, 0),
  CLAWFLEET_LIVENESS_MAX_BLOCK_MS: intFrom("CLAWFLEET_LIVENESS_MAX_BLOCK_MS", 10000, 50),
  CLAWFLEET_PLANNER_STALL_MS: intFrom("CLAWFLEET_PLANNER_STALL_MS", 300000, 100),
  CLAWFLEET_SIM_LATENCY_MS: intFrom("CLAWFLEET_SIM_LATENCY_MS", 0, 0),
  CLAWFLEET_SIM_FAILURE_RATE: numFrom("CLAWFLEET_SIM_FAILURE_RATE", 0, 0, 1),
  CLAWFLEET_SIM_POLICIES: optionalString,
  CLAWFLEET_RATE_LIMITS: jsonFrom("CLAWFLEET_RATE_LIMITS", RateLimitTableSchema, {}),
  CLAWFLEET_RATE_LIMIT_WINDOW_MS: intFrom("CLAWFLEET_RATE_LIMIT_WINDOW_MS", 60_000, 1),
  // Long enough that a planner's thousands of tasks wait their turn in the gateway's priority queue (one entry
  // each, admitted in order at the limit's pace) instead of being refused and retrying all at once.
  CLAWFLEET_RATE_LIMIT_MAX_WAIT_MS: intFrom("CLAWFLEET_RATE_LIMIT_MAX_WAIT_MS", 300_000, 0),
  CLAWFLEET_PRICES: jsonFrom("CLAWFLEET_PRICES", PricesSchema, {}),
  CLAWFLEET_FAULT_DROP_WAKEUPS: numFrom("CLAWFLEET_FAULT_DROP_WAKEUPS", 0, 0, 1),
  CLAWFLEET_TENANT_MAX_RUNNING: intFrom("CLAWFLEET_TENANT_MAX_RUNNING", 0, 0),
  CLAWFLEET_TENANT_SUBMIT_RATE: numFrom("CLAWFLEET_TENANT_SUBMIT_RATE", 0, 0, 1_000_000),
  CLAWFLEET_TENANT_SUBMIT_BURST: intFrom("CLAWFLEET_TENANT_SUBMIT_BURST", 0, 0),
  CLAWFLEET_TENANT_QUOTAS: jsonFrom("CLAWFLEET_TENANT_QUOTAS", TenantQuotaTableSchema, {}),
  CLAWFLEET_AUTH: z.enum(["on", "off"]).optional(),
  // The value is a secret: the message never repeats it.
  CLAWFLEET_ADMIN_KEY: optionalString.refine((v) => v === undefined || (v.length >= 24 && v.length <= 256 && /^[\x21-\x7e]+$/.test(v)), {
    message: "CLAWFLEET_ADMIN_KEY must be 24 to 256 printable ASCII characters without spaces (e.g. `openssl rand -base64 32`)",
  }),
  // Secrets: the messages name an id, never a value.
  CLAWFLEET_WEBHOOK_SECRETS: z
    .string()
    .optional()
    .transform((v, ctx): Record<string, string> => {
      try {
        return parseWebhookSecrets(v ?? "");
      } catch (err) {
        ctx.addIssue({ code: "custom", message: `CLAWFLEET_WEBHOOK_SECRETS ${(err as Error).message}` });
        return z.NEVER;
      }
    }),
  CLAWFLEET_WEBHOOK_ALLOW_PRIVATE: z.enum(["0", "1"], { message: "CLAWFLEET_WEBHOOK_ALLOW_PRIVATE must be 0 or 1" }).optional(),
  CLAWFLEET_PG_PREPARED_STATEMENTS: z.enum(["0", "1"], { message: "CLAWFLEET_PG_PREPARED_STATEMENTS must be 0 or 1" }).optional(),
  CLAWFLEET_PG_GROUP_COMMIT: z.enum(["0", "1"], { message: "CLAWFLEET_PG_GROUP_COMMIT must be 0 or 1" }).optional(),
  CLAWFLEET_WEBHOOK_TIMEOUT_MS: intFrom("CLAWFLEET_WEBHOOK_TIMEOUT_MS", 10_000, 100),
  CLAWFLEET_WEBHOOK_CONNECT_TIMEOUT_MS: intFrom("CLAWFLEET_WEBHOOK_CONNECT_TIMEOUT_MS", 3_000, 50),
  CLAWFLEET_WEBHOOK_POLL_MS: intFrom("CLAWFLEET_WEBHOOK_POLL_MS", 1_000, 10),
  CLAWFLEET_WEBHOOK_RETRY_BASE_MS: intFrom("CLAWFLEET_WEBHOOK_RETRY_BASE_MS", 1_000, 1),
  CLAWFLEET_WEBHOOK_RETRY_MAX_MS: intFrom("CLAWFLEET_WEBHOOK_RETRY_MAX_MS", 600_000, 1),
  CLAWFLEET_WEBHOOK_MAX_ATTEMPTS: intFrom("CLAWFLEET_WEBHOOK_MAX_ATTEMPTS", 150, 1),
  CLAWFLEET_WEBHOOK_MAX_AGE_MS: intFrom("CLAWFLEET_WEBHOOK_MAX_AGE_MS", 86_400_000, 1_000),
});

const SimEnvSchema = EnvSchema.pick({ CLAWFLEET_SIM_LATENCY_MS: true, CLAWFLEET_SIM_FAILURE_RATE: true, CLAWFLEET_SIM_POLICIES: true });

function simConfigOf(e: z.output<typeof SimEnvSchema>, cwd: string): SimConfig {
  const policies = [...new Set(patternsOf(e.CLAWFLEET_SIM_POLICIES ?? "", cwd).flatMap(expandPattern))];
  return { latencyMs: e.CLAWFLEET_SIM_LATENCY_MS, failureRate: e.CLAWFLEET_SIM_FAILURE_RATE, policies };
}

function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new ConfigError(issue?.path.join(".") ?? "environment", issue?.message ?? "invalid value");
}

/**
 * What a process the CLI starts keeps of its environment (`clawfleet plan --verify` starts a node and the sim):
 * what finds node and its tools, nothing of a cluster; the caller sets the rest.
 */
export function baseChildEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "LANG", "TMPDIR", "NODE_OPTIONS"]) {
    const v = env[k];
    if (v !== undefined) kept[k] = v;
  }
  return kept;
}

/** Only the simulated model's settings, for `clawfleet sim`, which needs no other part of the environment to be valid. */
export function loadSimConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): SimConfig {
  return simConfigOf(parseEnv(SimEnvSchema, env), cwd);
}

/** What `clawfleet repl` needs: the cluster to join, its log level, and the limits it reports. */
export interface ReplConfig {
  /** The cluster's transporter; the REPL joins it as a node without roles. */
  readonly transporter: string;
  readonly namespace: string;
  readonly logLevel: LogLevel;
  readonly rateLimits: Config["rateLimits"];
}

const ReplEnvSchema = EnvSchema.pick({
  TRANSPORTER: true,
  CLAWFLEET_NAMESPACE: true,
  LOG_LEVEL: true,
  CLAWFLEET_RATE_LIMITS: true,
  CLAWFLEET_RATE_LIMIT_WINDOW_MS: true,
  CLAWFLEET_RATE_LIMIT_MAX_WAIT_MS: true,
});

/** Only the REPL's settings: it holds no database, Redis or provider key, so it needs none of them. */
export function loadReplConfig(env: NodeJS.ProcessEnv = process.env): ReplConfig {
  const e = parseEnv(ReplEnvSchema, env);
  if (e.TRANSPORTER === undefined) {
    throw new ConfigError(
      "TRANSPORTER",
      "clawfleet repl joins a running cluster over its transporter: set TRANSPORTER and CLAWFLEET_NAMESPACE as the cluster's nodes have them " +
        "(an embedded node runs alone, with no transporter to join)",
    );
  }
  return {
    transporter: e.TRANSPORTER,
    namespace: e.CLAWFLEET_NAMESPACE ?? "clawfleet",
    // Quiet by default: the REPL's own output is what its user reads.
    logLevel: e.LOG_LEVEL ?? "warn",
    rateLimits: { limits: e.CLAWFLEET_RATE_LIMITS, windowMs: e.CLAWFLEET_RATE_LIMIT_WINDOW_MS, maxWaitMs: e.CLAWFLEET_RATE_LIMIT_MAX_WAIT_MS },
  };
}

/** What the client commands (`clawfleet tasks|watch|agents|switches|approvals|keys`) need: the REST API and a key for it. */
export interface ClientConfig {
  /** CLAWFLEET_URL: the REST API's base address. @default "http://localhost:3000" */
  readonly url: string;
  /** CLAWFLEET_API_KEY, sent as `Authorization: Bearer`; unset: no header (a cluster with CLAWFLEET_AUTH=off). */
  readonly apiKey: string | undefined;
}

const ClientEnvSchema = z.object({ CLAWFLEET_URL: urlWith("CLAWFLEET_URL", ["http://", "https://"]), CLAWFLEET_API_KEY: optionalString });

/** Only the client's settings: it talks HTTP to a running cluster and needs nothing else of the environment. */
export function loadClientConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  const e = parseEnv(ClientEnvSchema, env);
  return { url: e.CLAWFLEET_URL ?? "http://localhost:3000", apiKey: e.CLAWFLEET_API_KEY };
}

const GLOB_CHARS = /[*?{]/;

/** `a{b,c}d` → `abd`, `acd` (every group, no nesting). */
function expandBraces(pattern: string): string[] {
  const m = /\{([^{}]*)\}/.exec(pattern);
  if (!m) return [pattern];
  const [head, tail] = [pattern.slice(0, m.index), pattern.slice(m.index + m[0].length)];
  return (m[1] ?? "").split(",").flatMap((alt) => expandBraces(head + alt + tail));
}

/** One path segment's pattern (a name never holds a separator, so `*` may match anything). */
const segmentRegex = (segment: string) =>
  new RegExp(`^${segment.replace(/[.+^$()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);

/**
 * The paths an absolute pattern names: itself when it has no glob characters (whether or not it exists),
 * else the existing entries its segments match (`*` and `?` within one segment, `{a,b}` alternatives;
 * hidden entries only when the segment starts with a dot), sorted.
 */
function expandPattern(pattern: string): string[] {
  if (!GLOB_CHARS.test(pattern)) return [pattern];
  const out: string[] = [];
  for (const alt of expandBraces(pattern)) {
    const { root } = path.parse(alt);
    const segments = alt.slice(root.length).split(/[\\/]/).filter((s) => s !== "");
    const walk = (dir: string, i: number): void => {
      const segment = segments[i];
      if (segment === undefined) return void out.push(dir);
      if (!GLOB_CHARS.test(segment)) {
        const next = path.join(dir, segment);
        if (fs.existsSync(next)) walk(next, i + 1);
        return;
      }
      const re = segmentRegex(segment);
      let names: string[] = [];
      try {
        names = fs.readdirSync(dir);
      } catch {
        return; // not a folder
      }
      for (const name of names.sort()) if (re.test(name) && (segment.startsWith(".") || !name.startsWith("."))) walk(path.join(dir, name), i + 1);
    };
    walk(root, 0);
  }
  return [...new Set(out)].sort();
}

/** A path list (OS delimiter) of patterns relative to `cwd`, as absolute patterns. */
const patternsOf = (value: string, cwd: string) =>
  value
    .split(path.delimiter)
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => path.resolve(cwd, s));

/** True when tsx can be loaded from the project: its TypeScript service files are then loadable too. */
function tsxInstalled(cwd: string): boolean {
  try {
    require.resolve("tsx/cjs/api", { paths: [cwd] });
    return true;
  } catch {
    return false;
  }
}

function userServicesFrom(value: string | undefined, cwd: string): Config["userServices"] {
  if (value === "none") return { patterns: [], explicit: true, files: [] };
  if (value !== undefined) {
    const patterns = patternsOf(value, cwd);
    const files = patterns.flatMap(expandPattern).filter((f) => fs.statSync(f, { throwIfNoEntry: false })?.isFile() ?? true);
    return { patterns, explicit: true, files: [...new Set(files)].sort() };
  }
  const ext = tsxInstalled(cwd) ? "{js,cjs,mjs,ts}" : "{js,cjs,mjs}";
  const patterns = [path.resolve(cwd, "services", `*.service.${ext}`)];
  // Run from Clawfleet's own checkout, ./services holds Clawfleet's roles, not a project's services.
  const own = path.resolve(cwd, "services") === path.join(projectRoot(), "services");
  const files = own ? [] : patterns.flatMap(expandPattern).filter((f) => fs.statSync(f).isFile());
  return { patterns, explicit: false, files };
}

export function parseRoles(value: string | undefined): Role[] {
  if (value === undefined || value === "" || value === "all" || value === "*") return [...ROLES];
  const names = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = names.filter((n) => !(ROLES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new ConfigError(
      "SERVICES",
      `unknown role(s) ${unknown.map((u) => `"${u}"`).join(", ")}; known roles: ${ROLES.join(", ")}`,
    );
  }
  return [...new Set(names)] as Role[];
}

/** `loadConfig` with some variables set over the environment: what `startNode`'s options do. */
export function loadConfigOver(overrides: Readonly<Record<string, string>>, env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Config {
  return loadConfig({ ...env, ...overrides }, cwd);
}

/** Reads and validates the environment. Throws `ConfigError` naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Config {
  const e = parseEnv(EnvSchema, env);
  const mode = e.TRANSPORTER === undefined ? "embedded" : "distributed";
  if (mode === "distributed") {
    const missing = [e.REDIS_URL === undefined ? "REDIS_URL" : "", e.DATABASE_URL === undefined ? "DATABASE_URL" : ""].filter(
      (s) => s !== "",
    );
    if (missing.length > 0) {
      throw new ConfigError(
        missing[0] ?? "REDIS_URL",
        `TRANSPORTER is set, so this is a distributed deployment and ${missing.join(" and ")} must be set too ` +
          "(queue, leases and rate limits live in Redis, tasks in Postgres). " +
          "Unset TRANSPORTER to run everything in one embedded process instead.",
      );
    }
  }
  const services = parseRoles(e.SERVICES);
  if (mode === "embedded" && services.length !== ROLES.length) {
    throw new ConfigError("SERVICES", "picking roles needs a distributed deployment (TRANSPORTER, REDIS_URL, DATABASE_URL)");
  }
  const ttl = e.CLAWFLEET_LEASE_TTL_MS;
  const renew = e.CLAWFLEET_LEASE_RENEW_MS === 0 ? Math.floor(ttl / 3) : e.CLAWFLEET_LEASE_RENEW_MS;
  if (renew >= ttl) throw new ConfigError("CLAWFLEET_LEASE_RENEW_MS", `must be shorter than the lease TTL (${ttl} ms)`);
  if (e.CLAWFLEET_TENANT_SUBMIT_BURST > 0 && e.CLAWFLEET_TENANT_SUBMIT_RATE === 0) {
    throw new ConfigError("CLAWFLEET_TENANT_SUBMIT_BURST", "is the bucket of CLAWFLEET_TENANT_SUBMIT_RATE, which is not set (0 = no submit rate)");
  }
  if (e.CLAWFLEET_WEBHOOK_CONNECT_TIMEOUT_MS > e.CLAWFLEET_WEBHOOK_TIMEOUT_MS) {
    throw new ConfigError("CLAWFLEET_WEBHOOK_CONNECT_TIMEOUT_MS", `is part of an attempt, and longer than the whole attempt (CLAWFLEET_WEBHOOK_TIMEOUT_MS=${e.CLAWFLEET_WEBHOOK_TIMEOUT_MS})`);
  }
  if (e.CLAWFLEET_WEBHOOK_RETRY_BASE_MS > e.CLAWFLEET_WEBHOOK_RETRY_MAX_MS) {
    throw new ConfigError("CLAWFLEET_WEBHOOK_RETRY_BASE_MS", `is the first retry's wait and above the longest (CLAWFLEET_WEBHOOK_RETRY_MAX_MS=${e.CLAWFLEET_WEBHOOK_RETRY_MAX_MS})`);
  }
  const promptPatterns = patternsOf(e.CLAWFLEET_PROMPTS_DIR ?? "prompts", cwd);
  if (promptPatterns.length === 0) throw new ConfigError("CLAWFLEET_PROMPTS_DIR", "names no folder");
  const promptsDirs = [...new Set(promptPatterns.flatMap(expandPattern))];
  return {
    port: e.PORT,
    mode,
    transporter: e.TRANSPORTER,
    redisUrl: e.REDIS_URL,
    databaseUrl: e.DATABASE_URL,
    pgPreparedStatements: e.CLAWFLEET_PG_PREPARED_STATEMENTS !== "0",
    pgGroupCommit: e.CLAWFLEET_PG_GROUP_COMMIT !== "0",
    services,
    dataDir:
      e.CLAWFLEET_DATA_DIR === undefined
        ? path.resolve(cwd, ".clawfleet")
        : e.CLAWFLEET_DATA_DIR.startsWith("memory://")
          ? e.CLAWFLEET_DATA_DIR
          : path.resolve(cwd, e.CLAWFLEET_DATA_DIR),
    anthropicApiKey: e.ANTHROPIC_API_KEY,
    anthropicBaseUrl: e.ANTHROPIC_BASE_URL,
    logLevel: e.LOG_LEVEL ?? "info",
    logFormat: e.CLAWFLEET_LOG_FORMAT ?? "json",
    otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
    metricsEnabled: e.CLAWFLEET_METRICS !== "off",
    namespace: e.CLAWFLEET_NAMESPACE ?? "clawfleet",
    nodeId: e.CLAWFLEET_NODE_ID,
    promptsDirs,
    promptsDir: promptsDirs[0] ?? promptPatterns[0] ?? path.resolve(cwd, "prompts"),
    userServices: userServicesFrom(e.CLAWFLEET_USER_SERVICES, cwd),
    planner: { slots: e.CLAWFLEET_PLANNER_SLOTS, maxRssBytes: e.CLAWFLEET_PLANNER_MAX_RSS_MB * 1_048_576, defaultMaxSteps: e.CLAWFLEET_MAX_STEPS },
    lease: { ttlMs: ttl, renewMs: renew },
    reaper: { intervalMs: e.CLAWFLEET_REAPER_INTERVAL_MS, queuedAfterMs: e.CLAWFLEET_REAPER_QUEUED_AFTER_MS },
    canaryJudge: { intervalMs: e.CLAWFLEET_CANARY_JUDGE_INTERVAL_MS },
    retries: { maxAttempts: e.CLAWFLEET_MAX_ATTEMPTS, backoffMs: e.CLAWFLEET_RETRY_BACKOFF_MS },
    tools: { maxUnknownOutcomes: e.CLAWFLEET_TOOL_MAX_UNKNOWN_OUTCOMES },
    shutdownGraceMs: e.CLAWFLEET_SHUTDOWN_GRACE_MS,
    health: { maxLoopBlockMs: e.CLAWFLEET_LIVENESS_MAX_BLOCK_MS, plannerStallMs: e.CLAWFLEET_PLANNER_STALL_MS },
    faults: { dropWakeups: e.CLAWFLEET_FAULT_DROP_WAKEUPS },
    sim: simConfigOf(e, cwd),
    rateLimits: {
      limits: e.CLAWFLEET_RATE_LIMITS,
      windowMs: e.CLAWFLEET_RATE_LIMIT_WINDOW_MS,
      maxWaitMs: e.CLAWFLEET_RATE_LIMIT_MAX_WAIT_MS,
    },
    prices: { ...DEFAULT_PRICES, ...e.CLAWFLEET_PRICES },
    // 0 means off for each of the three.
    tenants: {
      maxRunning: e.CLAWFLEET_TENANT_MAX_RUNNING || null,
      submitRate: e.CLAWFLEET_TENANT_SUBMIT_RATE || null,
      submitBurst: e.CLAWFLEET_TENANT_SUBMIT_BURST || null,
      tenants: e.CLAWFLEET_TENANT_QUOTAS,
    },
    auth: { enabled: (e.CLAWFLEET_AUTH ?? (mode === "embedded" ? "off" : "on")) === "on", adminKey: e.CLAWFLEET_ADMIN_KEY },
    webhooks: {
      secrets: e.CLAWFLEET_WEBHOOK_SECRETS,
      allowPrivate: e.CLAWFLEET_WEBHOOK_ALLOW_PRIVATE === "1",
      timeoutMs: e.CLAWFLEET_WEBHOOK_TIMEOUT_MS,
      connectTimeoutMs: e.CLAWFLEET_WEBHOOK_CONNECT_TIMEOUT_MS,
      pollMs: e.CLAWFLEET_WEBHOOK_POLL_MS,
      retry: { baseMs: e.CLAWFLEET_WEBHOOK_RETRY_BASE_MS, maxMs: e.CLAWFLEET_WEBHOOK_RETRY_MAX_MS },
      maxAttempts: e.CLAWFLEET_WEBHOOK_MAX_ATTEMPTS,
      maxAgeMs: e.CLAWFLEET_WEBHOOK_MAX_AGE_MS,
    },
  };
}
