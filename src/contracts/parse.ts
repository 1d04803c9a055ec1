/**
 * Validation of what arrives over the broker or the REST API. A bad call is a
 * `ValidationError` naming the field, never a crash.
 */
import type { z } from "zod";
import { ValidationError } from "../errors";

export function parseParams<T>(schema: z.ZodType<T>, params: unknown, what: string): T {
  const r = schema.safeParse(params);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join(".") : undefined;
  throw new ValidationError(`${what}: ${field ? `field "${field}": ` : ""}${issue?.message ?? "invalid"}`, {
    ...(field !== undefined ? { field } : {}),
    issues: r.error.issues.slice(0, 10).map((i) => ({ field: i.path.join("."), message: i.message })),
  });
}

/**
 * The mark of params that Clawfleet's own code built in this process from values it had already
 * validated: the planner's model calls and checkpoint writes. It is a symbol: no serializer carries it,
 * so params that crossed the transport, or that any other caller built, never have it.
 */
const TYPED = Symbol("clawfleet.typedParams");

/** Marks `params` as built so, for `parseCallParams` on the same node. */
export function typedParams<T extends object>(params: T): T {
  if (Object.isExtensible(params)) Object.defineProperty(params, TYPED, { value: true, enumerable: false });
  return params;
}

/**
 * An action's params, validated: `parseParams`, except for params marked by `typedParams` whose schema
 * validates without changing anything (no default, coercion, transform, trimming or freezing anywhere in
 * it, and no check but the plain ones). Their caller built them from what it had validated before (the
 * claim's fence, the gateway's normalized answer, the agent file), and the validation would only copy
 * them: a model call's whole conversation on every turn, each checkpoint's step.
 */
export function parseCallParams<T>(schema: z.ZodType<T>, params: unknown, what: string): T {
  if (typeof params === "object" && params !== null && TYPED in params && validatesAsIs(schema)) return params as T;
  return parseParams(schema, params, what);
}

const asIs = new WeakMap<object, boolean>();

/** Whether every value the schema accepts comes out of it unchanged (unknown keys aside). */
export function validatesAsIs(schema: z.ZodType): boolean {
  let known = asIs.get(schema);
  if (known === undefined) {
    known = unchanging(schema, new Set());
    asIs.set(schema, known);
  }
  return known;
}

/** Schema kinds that only check a value; every other kind (default, prefault, catch, pipe, transform, …) may change it. */
const CHECKING = new Set([
  "string", "number", "int", "boolean", "bigint", "null", "undefined", "unknown", "any", "literal", "enum", "never",
  "object", "array", "tuple", "record", "union", "intersection", "optional", "nullable", "lazy", "template_literal",
]);

/** Checks that only look at a value. A custom one (`refine`, `check`) may write it; `overwrite` (trim, case folding) does. */
const PLAIN_CHECKS = new Set([
  "min_length", "max_length", "length_equals", "greater_than", "less_than", "multiple_of", "number_format", "bigint_format",
  "string_format", "min_size", "max_size", "size_equals",
]);

/** Deeper than this, a schema is taken as one that may change a value (a lazy that builds itself anew each time). */
const MAX_DEPTH = 64;

interface SchemaDef {
  type: string;
  coerce?: boolean;
  checks?: Array<{ _zod: { def: { check: string } } }>;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  items?: z.ZodType[];
  rest?: z.ZodType | null;
  keyType?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  left?: z.ZodType;
  right?: z.ZodType;
  innerType?: z.ZodType;
  catchall?: z.ZodType;
}

function unchanging(schema: z.ZodType, seen: Set<z.ZodType>, depth = 0): boolean {
  if (seen.has(schema)) return true;
  if (depth > MAX_DEPTH) return false;
  seen.add(schema);
  const internals = (schema as unknown as { _zod: { def: SchemaDef; innerType?: z.ZodType } })._zod;
  const def = internals.def;
  if (!CHECKING.has(def.type) || def.coerce === true) return false;
  if (!(def.checks ?? []).every((c) => PLAIN_CHECKS.has(c._zod.def.check))) return false;
  const children: z.ZodType[] = [
    ...Object.values(def.shape ?? {}),
    ...(def.items ?? []),
    ...(def.options ?? []),
    ...[def.element, def.rest, def.keyType, def.valueType, def.left, def.right, def.innerType, def.catchall].filter((c): c is z.ZodType => c != null),
    // A lazy's schema, as zod caches it.
    ...(def.type === "lazy" && internals.innerType ? [internals.innerType] : []),
  ];
  return children.every((c) => unchanging(c, seen, depth + 1));
}
