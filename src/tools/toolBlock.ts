/**
 * The `tool` block of a Moleculer action (the `ClawfleetTools` mixin), checked
 * when the service is created and turned into what the service publishes in its
 * registry metadata. Every problem is a ConfigError naming the service, the
 * action and the field, so a misdeclared tool stops its service from starting
 * instead of failing a model's call much later.
 *
 * Why a zod input sits behind a function (`input: () => z.object({…})`):
 * Moleculer 0.14 deep-copies every service schema (lodash `cloneDeep`) before
 * any mixin code runs, and a copied zod schema has lost its internals. A function
 * is kept as it is, so the schema it returns arrives whole, descriptions and all.
 */
import type { z } from "zod";
import { TOOL_NAME_PATTERN, type ServiceTool, type ToolServiceMetadata } from "../contracts";
import { ConfigError, messageOf } from "../errors";
import { compileInputSchema, isZod3Schema, isZodSchema, jsonSchemaOfZod } from "./inputSchema";

/** What an action declares to be a tool. */
export interface ToolBlock {
  /** What the model reads to decide when to call it and what comes back. */
  description: string;
  /**
   * The input, as the model is shown it and as the executor checks it before calling: a JSON Schema of an
   * object, or a function returning a zod schema (`() => z.object({…})`).
   */
  input: Record<string, unknown> | (() => z.ZodType);
  /** A tool that changes the world: run at most once per idempotency key (`ctx.meta.idempotencyKey`). @default false */
  sideEffect?: boolean;
  /** The executor's timeout for one call. At most {@link MAX_TOOL_TIMEOUT_MS}. @default 10000 */
  timeoutMs?: number;
  /** What the model calls it: 1-64 of `[a-zA-Z0-9_-]`. @default the action's name */
  name?: string;
}

/** The planner waits 120 s for `executor.run`; a tool's own timeout must end well before. */
export const MAX_TOOL_TIMEOUT_MS = 110_000;

const KEYS = new Set(["description", "input", "sideEffect", "timeoutMs", "name"]);

/** What the mixin reads of a service schema (after Moleculer merged its mixins). */
export interface ToolServiceSchema {
  fullName: string;
  actions?: Record<string, unknown>;
}

/** One action's tool: its published form, and its zod schema when it was given one. */
export interface ActionTool {
  tool: ServiceTool;
  /** Parses the params before the handler runs (defaults, transforms and refinements JSON Schema cannot say). */
  zod?: z.ZodType;
}

/**
 * The tools of a service: each action with a `tool` block, checked and converted. `byAction` gives each
 * action's published form, which replaces the block on the action (the registry sends actions to every node,
 * and a zod schema has no business on the wire).
 */
export function toolsOfService(schema: ToolServiceSchema): { metadata: ToolServiceMetadata; byAction: Map<string, ActionTool> } {
  const byAction = new Map<string, ActionTool>();
  const byName = new Map<string, string>();
  for (const [key, action] of Object.entries(schema.actions ?? {})) {
    if (action === null || typeof action !== "object" || !("tool" in action)) continue;
    const entry = toolOfAction(schema.fullName, key, action);
    const { name } = entry.tool;
    const clash = byName.get(name);
    if (clash !== undefined) throw new ConfigError(where(schema.fullName, key), `tool.name "${name}" is also the tool name of action ${clash}; tool names are unique`);
    byName.set(name, key);
    byAction.set(key, entry);
  }
  return { metadata: { version: 1, tools: [...byAction.values()].map((e) => e.tool) }, byAction };
}

interface ActionDef {
  tool: unknown;
  name?: unknown;
  visibility?: unknown;
}

const where = (service: string, action: string) => `service ${service}, action ${action}`;

function toolOfAction(service: string, key: string, action: ActionDef): ActionTool {
  const at = where(service, key);
  const fail = (field: string, reason: string) => new ConfigError(at, `tool${field ? `.${field}` : ""}: ${reason}`);
  const block = action.tool;
  if (block === null || typeof block !== "object" || Array.isArray(block)) throw fail("", "must be an object {description, input, sideEffect?, timeoutMs?, name?}");
  const b = block as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !KEYS.has(k));
  if (unknown.length > 0) throw fail(unknown[0] ?? "", `is not a field of a tool block (fields: ${[...KEYS].join(", ")})`);
  if (action.visibility === "protected" || action.visibility === "private") {
    throw new ConfigError(at, `a tool is called from other nodes: its action's visibility must be "published" (the default) or "public", not "${String(action.visibility)}"`);
  }

  const rawName = typeof action.name === "string" && action.name !== "" ? action.name : key;
  const name = b.name === undefined ? rawName : b.name;
  if (typeof name !== "string" || !TOOL_NAME_PATTERN.test(name)) {
    throw fail("name", `${JSON.stringify(name)} is not a tool name (1-64 of [a-zA-Z0-9_-])${b.name === undefined ? "; set tool.name" : ""}`);
  }
  if (typeof b.description !== "string" || b.description.trim() === "") throw fail("description", "must say what the tool does (a non-empty string)");
  if (b.sideEffect !== undefined && typeof b.sideEffect !== "boolean") throw fail("sideEffect", "must be true or false");
  if (b.timeoutMs !== undefined && !(Number.isInteger(b.timeoutMs) && (b.timeoutMs as number) > 0 && (b.timeoutMs as number) <= MAX_TOOL_TIMEOUT_MS)) {
    throw fail("timeoutMs", `must be an integer number of milliseconds in 1..${MAX_TOOL_TIMEOUT_MS}`);
  }

  const { schema: inputSchema, zod } = inputSchemaOf(b.input, (reason) => fail("input", reason));
  const tool: ServiceTool = {
    name,
    action: `${service}.${rawName}`,
    description: b.description,
    inputSchema,
    sideEffect: b.sideEffect === true,
    ...(b.timeoutMs !== undefined ? { timeoutMs: b.timeoutMs as number } : {}),
  };
  return zod ? { tool, zod } : { tool };
}

function inputSchemaOf(input: unknown, fail: (reason: string) => Error): { schema: Record<string, unknown>; zod?: z.ZodType } {
  if (input === undefined) throw fail("is required: a JSON Schema of an object, or () => a zod schema");
  let schema: Record<string, unknown>;
  let zodSchema: z.ZodType | undefined;
  if (typeof input === "function") {
    let zod: unknown;
    try {
      zod = (input as () => unknown)();
    } catch (err) {
      throw fail(`its function threw: ${messageOf(err)}`);
    }
    if (!isZodSchema(zod)) throw fail(isZod3Schema(zod) ? "is a zod 3 schema; use zod 4, or a JSON Schema" : "its function must return a zod schema");
    zodSchema = zod;
    try {
      schema = jsonSchemaOfZod(zod);
    } catch (err) {
      throw fail(`the zod schema has no JSON Schema form: ${messageOf(err)}`);
    }
  } else if (isZodSchema(input) || isCopiedZodSchema(input)) {
    throw fail("a zod schema written directly is deep-copied (and broken) by Moleculer before any mixin sees it: write input: () => z.object({…})");
  } else if (isZod3Schema(input)) {
    throw fail("is a zod 3 schema; use zod 4 (input: () => z.object({…})), or a JSON Schema");
  } else if (input !== null && typeof input === "object" && !Array.isArray(input)) {
    try {
      // A copy of plain JSON: what crosses the wire is what the executor checks against.
      schema = JSON.parse(JSON.stringify(input)) as Record<string, unknown>;
    } catch (err) {
      throw fail(`is not plain JSON: ${messageOf(err)}`);
    }
    delete schema.$schema;
  } else {
    throw fail("must be a JSON Schema of an object, or () => a zod schema");
  }
  try {
    compileInputSchema(schema);
  } catch (err) {
    throw fail(messageOf(err));
  }
  return zodSchema ? { schema, zod: zodSchema } : { schema };
}

/** What Moleculer's deep copy leaves of a zod 4 schema: its `def` and `type`, on zod's prototype, without `_zod`. */
function isCopiedZodSchema(value: unknown): boolean {
  if (value === null || typeof value !== "object" || "_zod" in value) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto !== Object.prototype && proto !== null && "def" in value && typeof (value as { safeParse?: unknown }).safeParse === "function";
}
