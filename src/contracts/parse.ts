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
 * The mark of params that Clawfleet's own typed code built in this process (the planner's model calls and
 * store calls). It is a symbol: no serializer carries it, so params that crossed the transport, or that any
 * other caller built, never have it.
 */
const TYPED = Symbol("clawfleet.typedParams");

/** Marks `params` as built by Clawfleet's typed code, for `parseCallParams` on the same node. */
export function typedParams<T extends object>(params: T): T {
  if (Object.isExtensible(params)) Object.defineProperty(params, TYPED, { value: true, enumerable: false });
  return params;
}

/**
 * An action's params, validated: `parseParams`, except for params marked by `typedParams` whose schema
 * validates without changing anything (no default, coercion, transform or trimming anywhere in it). Those
 * were type-checked where they were built, in this process, and the validation would only copy them: a
 * model call's whole conversation on every turn, each checkpoint's step.
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
  "object", "array", "tuple", "record", "union", "intersection", "optional", "nullable", "lazy", "readonly", "template_literal",
]);

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
  getter?: () => z.ZodType;
}

function unchanging(schema: z.ZodType, seen: Set<z.ZodType>): boolean {
  if (seen.has(schema)) return true;
  seen.add(schema);
  const def = (schema as unknown as { _zod: { def: SchemaDef } })._zod.def;
  if (!CHECKING.has(def.type) || def.coerce === true) return false;
  // String trimming and case folding are "overwrite" checks: they change the value.
  if ((def.checks ?? []).some((c) => c._zod.def.check === "overwrite")) return false;
  const children: z.ZodType[] = [
    ...Object.values(def.shape ?? {}),
    ...(def.items ?? []),
    ...(def.options ?? []),
    ...[def.element, def.rest, def.keyType, def.valueType, def.left, def.right, def.innerType, def.catchall].filter((c): c is z.ZodType => c != null),
    ...(def.getter ? [def.getter()] : []),
  ];
  return children.every((c) => unchanging(c, seen));
}
