/**
 * Kill switches (README, "Kill switches"): an operator pauses an agent, a prompt
 * version, a tool or a model, cluster-wide. The REST body, the switch as the
 * store keeps it and the API answers it, its history, the claim's exclusion list
 * and the control event every planner and intake hears.
 */
import { z } from "zod";
import { TimestampSchema } from "./task";
import { TOOL_NAME_PATTERN } from "./tools";

export const SWITCH_KINDS = ["agent", "tool", "model", "prompt"] as const;
export const SwitchKindSchema = z.enum(SWITCH_KINDS);
export type SwitchKind = z.infer<typeof SwitchKindSchema>;

/** What a pause does to the work already under way: `drain` lets it finish, `abort` cancels it. */
export const IN_FLIGHT_POLICIES = ["drain", "abort"] as const;
export const InFlightSchema = z.enum(IN_FLIGHT_POLICIES);
export type InFlight = z.infer<typeof InFlightSchema>;

/** How each kind's name is spelled: an agent's name, a tool as the model sees it, a model id, a prompt version. */
export const SWITCH_NAME_RULES: Readonly<Record<SwitchKind, { pattern: RegExp; says: string }>> = {
  agent: { pattern: /^[a-z0-9][a-z0-9_-]{0,99}$/, says: "an agent name is lower-case letters, digits, '-' and '_'" },
  tool: { pattern: TOOL_NAME_PATTERN, says: "a tool name, as the model sees it, is letters, digits, '_' and '-' (at most 64)" },
  model: { pattern: /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$/, says: "a model id, as in an agent's tiers, is letters, digits and '._:@/-'" },
  prompt: { pattern: /^[0-9a-f]{8,64}$/, says: "a prompt version is the hex hash GET /v1/tasks/{id} shows as prompt_version" },
};

/** A switch's name; each kind narrows it further (SWITCH_NAME_RULES). */
export const SwitchNameSchema = z.string().min(1).max(200);

/** What a switch covers: `kind` and the name within it. */
export const SwitchScopeSchema = z
  .object({ kind: SwitchKindSchema, name: SwitchNameSchema })
  .superRefine((s, ctx) => {
    const rule = SWITCH_NAME_RULES[s.kind];
    if (!rule.pattern.test(s.name)) ctx.addIssue({ code: "custom", path: ["name"], message: rule.says, input: s.name });
  });
export type SwitchScope = z.infer<typeof SwitchScopeSchema>;

/** Body of `PUT /v1/switches/{kind}/{name}`. `in_flight` says what a pause does to running work. @default "drain" */
export const SetSwitchSchema = z
  .object({
    paused: z.boolean(),
    in_flight: InFlightSchema.optional().describe("what a pause does to running work: drain (default) lets it finish, abort cancels it"),
  })
  .strict()
  .refine((b) => b.paused || b.in_flight !== "abort", { path: ["in_flight"], message: "abort applies to a pause only" });
export type SetSwitch = z.infer<typeof SetSwitchSchema>;

/** Who changed a switch: an API key's id, `anonymous` (authentication off) or `repl:<node id>`. */
export const SwitchedBySchema = z.string().min(1).max(200);

/** A switch as the store keeps it and `GET /v1/switches` lists it; a lifted switch stays, with `paused: false`. */
export const SwitchSchema = z.object({
  kind: SwitchKindSchema,
  name: SwitchNameSchema,
  paused: z.boolean(),
  in_flight: InFlightSchema,
  updated_by: SwitchedBySchema,
  updated_at: TimestampSchema,
  /** Bumped by every change of this switch: a process that saw version n knows whether it missed one. */
  version: z.number().int().positive(),
});
export type Switch = z.infer<typeof SwitchSchema>;

/** One change as the store records it (`setSwitch`), whoever made it. */
export const NewSwitchChangeSchema = z.object({
  kind: SwitchKindSchema,
  name: SwitchNameSchema,
  paused: z.boolean(),
  in_flight: InFlightSchema,
  by: SwitchedBySchema,
});
export type NewSwitchChange = z.infer<typeof NewSwitchChangeSchema>;

/** A switch's history, one row per change: who, when, what. */
export const SwitchChangeSchema = NewSwitchChangeSchema.extend({
  id: z.number().int().positive(),
  at: TimestampSchema,
  version: z.number().int().positive(),
});
export type SwitchChange = z.infer<typeof SwitchChangeSchema>;

/** The scopes a claim passes over: tasks of these agents and prompt versions stay queued. */
export const ClaimExclusionsSchema = z.object({
  agents: z.array(z.string().max(200)).max(1_000),
  prompt_versions: z.array(z.string().max(200)).max(1_000),
});
export type ClaimExclusions = z.infer<typeof ClaimExclusionsSchema>;

/** The task statuses a switch's scope is listed in: queued (woken when it lifts) or running (cancelled by `abort`). */
export const ScopeStatusSchema = z.enum(["queued", "running"]);
export type ScopeStatus = z.infer<typeof ScopeStatusSchema>;

/** The switches that cover tasks in the store: an agent's, a prompt version's. */
export const TaskScopeSchema = z.object({ kind: z.enum(["agent", "prompt"]), name: SwitchNameSchema });
export type TaskScope = z.infer<typeof TaskScopeSchema>;

/** Broadcast once a change is committed; every process holding a SwitchBoard refreshes it at once. */
export const SWITCH_CHANGED_EVENT = "clawfleet.control.switch_changed";

export const SwitchChangedEventSchema = SwitchSchema.extend({
  /** The intake node that committed the change. */
  node: z.string(),
});
export type SwitchChangedEvent = z.infer<typeof SwitchChangedEventSchema>;

/** `intake.setSwitch`: kind and name as the URL spells them (intake checks them), the body as sent, and who. */
export const SetSwitchParamsSchema = z.object({ kind: z.string().max(1_000), name: z.string().max(1_000), body: z.unknown(), by: SwitchedBySchema });
export type SetSwitchParams = z.infer<typeof SetSwitchParamsSchema>;

/** `intake.switchChanges`: the newest `limit` changes, of one kind or one switch when named. */
export const SwitchChangesParamsSchema = z.object({
  limit: z.number().int().positive().max(1_000).default(50),
  kind: SwitchKindSchema.optional(),
  name: SwitchNameSchema.optional(),
});
