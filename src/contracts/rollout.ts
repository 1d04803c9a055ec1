/**
 * Prompt versions as data and their rollout (migration 008, src/rollout/): the
 * versions an agent has, the rollout row that says which one new tasks run
 * (stable, or a canary for a share of them), the REST bodies and views of
 * `/v1/agents`, and the `clawfleet.control.canary_*` events.
 */
import { z } from "zod";
import { AgentSummarySchema } from "./agents";
import { TimestampSchema } from "./task";

/** An agent's name, as agent files spell it. */
export const AgentNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "an agent name is lower-case letters, digits, '-' and '_'").max(128);

/** A prompt version: the first 12 hex digits of the sha256 of the agent file text. */
export const PromptVersionSchema = z.string().min(1).max(64);

export const VERSION_ORIGINS = ["file", "canary"] as const;
export const VersionOriginSchema = z.enum(VERSION_ORIGINS);
export type VersionOrigin = z.infer<typeof VersionOriginSchema>;

export const CANARY_STATES = ["none", "running", "promoted", "rolled_back", "aborted"] as const;
export const CanaryStateSchema = z.enum(CANARY_STATES);
export type CanaryState = z.infer<typeof CanaryStateSchema>;

/** Longest agent file text a version may hold (the REST body's 1 MiB bounds it anyway). */
export const AGENT_SOURCE_MAX = 200_000;

// eslint-disable-next-line no-control-regex -- the NUL is what this looks for
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Agent file text: a text column holds no NUL, and an unpaired surrogate is not text. */
export const AgentSourceSchema = z
  .string()
  .min(1, "the agent file text is empty")
  .max(AGENT_SOURCE_MAX, `agent file text is limited to ${AGENT_SOURCE_MAX} characters`)
  .refine((s) => !UNSTORABLE.test(s), "contains a NUL character or an unpaired UTF-16 surrogate, which cannot be stored");

/** A version to store: the agent file text it is the hash of, and where it came from. */
export const NewAgentVersionSchema = z.object({
  agent: AgentNameSchema,
  version: PromptVersionSchema,
  source: AgentSourceSchema,
  origin: VersionOriginSchema,
});
export type NewAgentVersion = z.infer<typeof NewAgentVersionSchema>;

export const AgentVersionSchema = NewAgentVersionSchema.extend({ first_seen: TimestampSchema });
export type AgentVersion = z.infer<typeof AgentVersionSchema>;

/** A version as listed for operators: without its text, with the tasks pinned to it. */
export const AgentVersionInfoSchema = z.object({
  version: PromptVersionSchema,
  origin: VersionOriginSchema,
  first_seen: TimestampSchema,
  /** Tasks (any status, every tenant) that carry this version. */
  tasks: z.number().int().nonnegative(),
});
export type AgentVersionInfo = z.infer<typeof AgentVersionInfoSchema>;

/** A canary's traffic steps, in percent of new tasks: rising, each 1-100. */
export const CanaryStepsSchema = z
  .array(z.number().int().min(1).max(100))
  .min(1)
  .max(20)
  .refine((s) => s.every((w, i) => i === 0 || w > (s[i - 1] ?? 0)), "steps must rise strictly (e.g. [5, 25, 50, 100])");

export const DEFAULT_CANARY_STEPS: readonly number[] = [5, 25, 50, 100];
export const DEFAULT_MIN_TASKS_PER_STEP = 100;

export const MinTasksPerStepSchema = z.number().int().min(1).max(1_000_000);

/** An agent's rollout row (`agent_rollouts`), as the store hands it back. */
export const RolloutSchema = z.object({
  agent: AgentNameSchema,
  /** What new tasks run outside the canary's share. */
  stable_version: PromptVersionSchema,
  /** The version the agent files had when a node last started with them: a new one is a deploy, and wins. */
  file_version: PromptVersionSchema,
  canary_version: PromptVersionSchema.nullable(),
  /** Percent of new tasks that run the canary; 0 unless `canary_state` is `running`. */
  canary_weight: z.number().int().min(0).max(100),
  steps: z.array(z.number().int()),
  /** Index into `steps` of the current step. */
  step_index: z.number().int().nonnegative(),
  min_tasks_per_step: z.number().int().positive(),
  canary_state: CanaryStateSchema,
  canary_started_at: TimestampSchema.nullable(),
  step_started_at: TimestampSchema.nullable(),
  decided_at: TimestampSchema.nullable(),
  /** Who started or aborted the canary, and the judge's own state (its figures, its verdicts). */
  evidence: z.record(z.string(), z.unknown()).nullable(),
  /** Bumped by every change: a decision names the revision it was made on. */
  revision: z.number().int().nonnegative(),
  updated_at: TimestampSchema,
});
export type Rollout = z.infer<typeof RolloutSchema>;

/** What `syncFileVersion` did with an agent's file version at start-up. */
export const FileSyncResultSchema = z.object({
  rollout: RolloutSchema,
  /** The agent files had a new version: it became stable. */
  deployed: z.boolean(),
  /** The canary that was running when the deploy came, aborted by it. */
  aborted_canary: PromptVersionSchema.nullable(),
});
export type FileSyncResult = z.infer<typeof FileSyncResultSchema>;

/**
 * A decision on a running canary (the judge's), applied only while the row is at the revision it was made
 * on. Fields left out keep their value. Leaving `running` also sets the weight to 0 and `decided_at`;
 * `promoted` makes the canary stable (unless `stable_version` says otherwise); a new `step_index` restarts
 * `step_started_at`. `evidence` is merged into the stored object, key by key.
 */
export const RolloutChangeSchema = z
  .object({
    canary_state: CanaryStateSchema.optional(),
    canary_weight: z.number().int().min(0).max(100).optional(),
    step_index: z.number().int().nonnegative().max(19).optional(),
    stable_version: PromptVersionSchema.optional(),
    evidence: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type RolloutChange = z.infer<typeof RolloutChangeSchema>;

export const DecisionResultSchema = z.object({
  /** False when the row had moved on (another decision, an abort, a deploy): nothing was changed. */
  applied: z.boolean(),
  /** The row after the decision, or as it is now when it did not apply; null for an unknown agent. */
  rollout: RolloutSchema.nullable(),
});
export type DecisionResult = z.infer<typeof DecisionResultSchema>;

/** `POST /v1/agents/{name}/canary`. */
export const StartCanarySchema = z
  .object({
    /** The whole agent file: front matter and system prompt. Its `name` must be the agent's. */
    prompt: AgentSourceSchema,
    steps: CanaryStepsSchema.optional(),
    min_tasks_per_step: MinTasksPerStepSchema.optional(),
  })
  .strict();
export type StartCanary = z.infer<typeof StartCanarySchema>;

/** A canary as `GET /v1/agents/{name}` shows it. */
export const CanaryViewSchema = z.object({
  version: PromptVersionSchema,
  /** Percent of new tasks that run it now. */
  weight: z.number().int().min(0).max(100),
  /** The current step, counted from 1 (`steps[step - 1]` is its share). */
  step: z.number().int().positive(),
  steps: z.array(z.number().int()),
  min_tasks_per_step: z.number().int().positive(),
  state: CanaryStateSchema,
  started_at: TimestampSchema.nullable(),
  step_started_at: TimestampSchema.nullable(),
  decided_at: TimestampSchema.nullable(),
  /** Who started or aborted it, and the judge's state: its figures per version and its verdicts. */
  evidence: z.record(z.string(), z.unknown()).nullable(),
});
export type CanaryView = z.infer<typeof CanaryViewSchema>;

/** An agent with its versions and rollout, for operators (`GET /v1/agents`, `clawfleet repl`'s `agents`). */
export const AgentViewSchema = AgentSummarySchema.extend({
  /** The version of the agent file this node read. */
  file_version: PromptVersionSchema,
  /** What new tasks run outside a canary's share. */
  stable_version: PromptVersionSchema,
  /** Every version stored, oldest first. */
  versions: z.array(AgentVersionInfoSchema),
  /** The latest canary (running or decided); null when the agent never had one. */
  canary: CanaryViewSchema.nullable(),
  revision: z.number().int().nonnegative(),
});
export type AgentView = z.infer<typeof AgentViewSchema>;

export const CANARY_EVENT_NAMES = ["clawfleet.control.canary_started", "clawfleet.control.canary_aborted"] as const;
export type CanaryEventName = (typeof CANARY_EVENT_NAMES)[number];

/** Every canary event: intakes refresh their routing at once on any of them. */
export const CANARY_EVENTS_WILDCARD = "clawfleet.control.canary_*";

const CanaryEventBase = z.object({
  agent: AgentNameSchema,
  /** The canary's version. */
  version: PromptVersionSchema,
  /** The stable version after the change. */
  stable_version: PromptVersionSchema,
  /** The rollout row's revision after the change. */
  revision: z.number().int().nonnegative(),
  /** Who: an API key's id, `anonymous` (authentication off), `repl:<node>`, or `deploy`. */
  by: z.string(),
  at: TimestampSchema,
  node: z.string(),
});

export const CanaryStartedEventSchema = CanaryEventBase.extend({
  weight: z.number().int().min(0).max(100),
  steps: z.array(z.number().int()),
  min_tasks_per_step: z.number().int().positive(),
});

export const CanaryAbortedEventSchema = CanaryEventBase.extend({
  /** `operator`: `DELETE /v1/agents/{name}/canary`; `deploy`: the agent files changed under a running canary. */
  reason: z.enum(["operator", "deploy"]),
});

export const CANARY_EVENT_SCHEMAS = {
  "clawfleet.control.canary_started": CanaryStartedEventSchema,
  "clawfleet.control.canary_aborted": CanaryAbortedEventSchema,
} as const satisfies Record<CanaryEventName, z.ZodType>;

export type CanaryEventPayload<N extends CanaryEventName = CanaryEventName> = z.infer<(typeof CANARY_EVENT_SCHEMAS)[N]>;
export type CanaryStartedEvent = CanaryEventPayload<"clawfleet.control.canary_started">;
export type CanaryAbortedEvent = CanaryEventPayload<"clawfleet.control.canary_aborted">;
