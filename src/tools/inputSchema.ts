/**
 * Tool input schemas: what the model is shown, and what the executor checks the
 * model's input against before any tool runs, whatever the tool's source. One
 * JSON Schema dialect, 2020-12 (what zod emits), each schema compiled once.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020";
import { z } from "zod";
import { messageOf } from "../errors";

/** One problem with the model's input, at a dotted path (`items.0.quantity`; empty for the input itself). */
export interface ToolIssue {
  path: string;
  message: string;
}

/** A zod 4 schema, from this copy of zod or the user's own (both carry `_zod`). */
export function isZodSchema(value: unknown): value is z.ZodType {
  return typeof value === "object" && value !== null && "_zod" in value;
}

/** A zod 3 schema: recognisable, but `z.toJSONSchema` cannot read it. */
export function isZod3Schema(value: unknown): boolean {
  return typeof value === "object" && value !== null && "_def" in value && !("_zod" in value) && typeof (value as { safeParse?: unknown }).safeParse === "function";
}

/** The JSON Schema the model is shown for a zod schema: the input side of any transform, without `$schema`. */
export function jsonSchemaOfZod(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: "input" }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}

// A few formats are checked; any other is accepted as it is (the tool sees the value and may refuse it).
const FORMATS: Record<string, RegExp | ((s: string) => boolean)> = {
  "date-time": /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})$/,
  date: /^\d{4}-\d{2}-\d{2}$/,
  time: /^\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})?$/,
  email: /^[^\s@]+@[^\s@]+\.[^\s@]+$/,
  uuid: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
  uri: (s) => URL.canParse(s),
};

// Not strict: keywords and formats it does not know (a user's `x-…`, `format: "phone"`) are let through, not refused.
const ajv = new Ajv2020({ allErrors: true, strict: false, logger: false, formats: FORMATS });

const byObject = new WeakMap<object, ValidateFunction>();
/** Sources that build a new schema object per look-up are cached by the schema's text; bounded. */
const byText = new Map<string, ValidateFunction>();
const MAX_BY_TEXT = 500;

/** Compiles `schema`; throws an Error saying what is wrong with it when it is not a usable input schema. */
export function compileInputSchema(schema: Record<string, unknown>): ValidateFunction {
  const known = byObject.get(schema);
  if (known) return known;
  const text = JSON.stringify(schema);
  let validate = byText.get(text);
  if (!validate) {
    if (schema.type !== "object") throw new Error(`an input schema describes an object (type: "object"), got type ${JSON.stringify(schema.type)}`);
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      throw new Error(`not a valid JSON Schema: ${messageOf(err)}`);
    }
    if (byText.size >= MAX_BY_TEXT) byText.delete(byText.keys().next().value as string);
    byText.set(text, validate);
  }
  byObject.set(schema, validate);
  return validate;
}

/** The problems with `input` under `schema`, one per field; undefined when it is valid. */
export function checkInput(schema: Record<string, unknown>, input: unknown): ToolIssue[] | undefined {
  const validate = compileInputSchema(schema);
  if (validate(input)) return undefined;
  const issues = (validate.errors ?? []).map(issueOf);
  // allErrors reports an `anyOf` failure with each branch's errors too; one line per path and message is enough.
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.path}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function issueOf(e: ErrorObject): ToolIssue {
  const segments = e.instancePath.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  const params = e.params as { missingProperty?: string; additionalProperty?: string; allowedValues?: unknown[] };
  if (e.keyword === "required" && params.missingProperty !== undefined) {
    return { path: [...segments, params.missingProperty].join("."), message: "is required" };
  }
  if (e.keyword === "additionalProperties" && params.additionalProperty !== undefined) {
    return { path: [...segments, params.additionalProperty].join("."), message: "is not an allowed field" };
  }
  if (e.keyword === "enum" && Array.isArray(params.allowedValues)) {
    return { path: segments.join("."), message: `must be one of ${params.allowedValues.map((v) => JSON.stringify(v)).join(", ")}` };
  }
  return { path: segments.join("."), message: e.message ?? `fails ${e.keyword}` };
}
