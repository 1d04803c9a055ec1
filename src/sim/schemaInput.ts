/**
 * A value that a JSON Schema accepts, for the tool inputs of the generic
 * policy. Deterministic, and minimal in the way a careful caller is: an object
 * gets its required properties only; a value the schema suggests (`const`,
 * `default`, `examples[0]`, `enum[0]`) is taken as is; anything else is a plain
 * value of the declared type within its bounds (length, range, multiple,
 * format, pattern, item counts). Local `$ref`s (`#/$defs/…`, `#/definitions/…`)
 * are followed; `allOf` is merged, `anyOf`/`oneOf` take their first non-null
 * branch. Drafts 4 to 2020-12 and the OpenAPI `example` keyword are read.
 */
import { samplePattern } from "./patternSample";

type Schema = Record<string, unknown>;

/** Below this depth a recursive schema gets the smallest value of its type. */
const MAX_DEPTH = 12;

/** Samples of the `format`s tool schemas use (JSON Schema's own and OpenAPI's). */
const FORMATS: Record<string, string> = {
  "date-time": "2025-01-01T00:00:00Z",
  date: "2025-01-01",
  time: "00:00:00Z",
  duration: "P1D",
  email: "user@example.com",
  "idn-email": "user@example.com",
  hostname: "example.com",
  "idn-hostname": "example.com",
  ipv4: "192.0.2.1",
  ipv6: "2001:db8::1",
  uri: "https://example.com/",
  url: "https://example.com/",
  iri: "https://example.com/",
  "uri-reference": "/example",
  "iri-reference": "/example",
  "uri-template": "https://example.com/{id}",
  uuid: "00000000-0000-4000-8000-000000000000",
  "json-pointer": "/example",
  "relative-json-pointer": "0",
  regex: ".*",
  byte: "ZXhhbXBsZQ==",
  binary: "example",
  password: "example",
};

const PLAIN_STRING = "example";

const isRecord = (v: unknown): v is Schema => typeof v === "object" && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

interface Walk {
  root: unknown;
  depth: number;
}

/** The input a tool's `input_schema` accepts; a schema that yields no object gives `{}`. */
export function inputFromSchema(schema: unknown): Record<string, unknown> {
  const value = valueFromSchema(schema);
  return isRecord(value) ? value : {};
}

/** A value `schema` accepts (best effort for contradictory schemas). */
export function valueFromSchema(schema: unknown, root: unknown = schema): unknown {
  return valueOf(schema, { root, depth: 0 });
}

function valueOf(schema: unknown, w: Walk): unknown {
  // `true` and `{}` accept anything; `false` accepts nothing, and null is as good a guess as any.
  if (schema === false) return null;
  if (!isRecord(schema)) return PLAIN_STRING;
  const s = flatten(schema, w);
  if ("const" in s) return s.const;
  if ("default" in s) return s.default;
  if (Array.isArray(s.examples) && s.examples.length > 0) return s.examples[0];
  if ("example" in s) return s.example;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  const deeper = { root: w.root, depth: w.depth + 1 };
  switch (typeOf(s)) {
    case "object":
      return objectOf(s, deeper);
    case "array":
      return arrayOf(s, deeper);
    case "integer":
      return numberOf(s, true);
    case "number":
      return numberOf(s, false);
    case "boolean":
      return true;
    case "null":
      return null;
    default:
      return stringOf(s);
  }
}

/** Resolves `$ref`, merges `allOf` and picks the first usable `anyOf`/`oneOf` branch, into one plain schema. */
function flatten(schema: Schema, w: Walk): Schema {
  let s = schema;
  for (let hops = 0; typeof s.$ref === "string" && hops < MAX_DEPTH; hops++) {
    const { $ref, ...rest } = s;
    const target = resolveRef($ref, w.root);
    s = isRecord(target) ? merge(target, rest) : rest;
  }
  if (Array.isArray(s.allOf)) {
    const { allOf, ...rest } = s;
    s = (allOf as unknown[]).filter(isRecord).reduce<Schema>((acc, part) => merge(acc, flatten(part, w)), rest);
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const branches = s[key];
    if (!Array.isArray(branches)) continue;
    const { [key]: _dropped, ...rest } = s;
    const records = branches.filter(isRecord);
    const branch = records.find((b) => b.type !== "null") ?? records[0];
    s = branch ? merge(rest, flatten(branch, w)) : rest;
  }
  return s;
}

/** JSON Pointer into the root schema (`#/$defs/Item`, `#/definitions/Item`, `#`); anything else resolves to nothing. */
function resolveRef(ref: string, root: unknown): unknown {
  if (!ref.startsWith("#")) return undefined;
  const parts = ref.slice(1).split("/").filter((p) => p !== "").map((p) => decodeURIComponent(p).replace(/~1/g, "/").replace(/~0/g, "~"));
  let at: unknown = root;
  for (const p of parts) {
    if (!isRecord(at) && !Array.isArray(at)) return undefined;
    at = (at as Record<string, unknown>)[p];
  }
  return at;
}

/** Later keys win, except that properties are united and required lists concatenated. */
function merge(a: Schema, b: Schema): Schema {
  const out: Schema = { ...a, ...b };
  if (isRecord(a.properties) || isRecord(b.properties)) out.properties = { ...(isRecord(a.properties) ? a.properties : {}), ...(isRecord(b.properties) ? b.properties : {}) };
  if (Array.isArray(a.required) || Array.isArray(b.required)) out.required = [...new Set([...stringList(a.required), ...stringList(b.required)])];
  return out;
}

const stringList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);

function typeOf(s: Schema): string {
  const types: unknown[] = Array.isArray(s.type) ? s.type : [s.type];
  const declared = types.find((t) => t !== "null") ?? types[0];
  if (typeof declared === "string") return declared;
  if ("properties" in s || "required" in s || "additionalProperties" in s || "patternProperties" in s) return "object";
  if ("items" in s || "prefixItems" in s || "minItems" in s) return "array";
  if ("minimum" in s || "maximum" in s || "exclusiveMinimum" in s || "exclusiveMaximum" in s || "multipleOf" in s) return "number";
  return "string";
}

function objectOf(s: Schema, w: Walk): Record<string, unknown> {
  const props = isRecord(s.properties) ? s.properties : {};
  const extra = s.additionalProperties;
  const out: Record<string, unknown> = {};
  const fill = (name: string) => {
    out[name] = w.depth > MAX_DEPTH ? null : valueOf(props[name] ?? (isRecord(extra) ? extra : true), w);
  };
  for (const name of stringList(s.required)) fill(name);
  // minProperties: optional properties in their declared order, then made-up names if more are allowed.
  const min = num(s.minProperties) ?? 0;
  for (const name of Object.keys(props)) if (Object.keys(out).length < min && !(name in out)) fill(name);
  for (let i = 1; Object.keys(out).length < min && extra !== false && i <= min; i++) fill(`property_${i}`);
  return out;
}

function arrayOf(s: Schema, w: Walk): unknown[] {
  // Draft 2020-12 writes a tuple as prefixItems + items; earlier drafts as an items array + additionalItems.
  const tuple = Array.isArray(s.prefixItems) ? s.prefixItems : Array.isArray(s.items) ? s.items : [];
  const rest = Array.isArray(s.items) ? s.additionalItems : s.items;
  const max = num(s.maxItems) ?? Infinity;
  const restAllowed = rest !== false;
  const wanted = Math.max(num(s.minItems) ?? 0, tuple.length > 0 ? tuple.length : 1);
  const count = Math.min(wanted, max, restAllowed ? Infinity : tuple.length);
  if (w.depth > MAX_DEPTH) return [];
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const item = valueOf(i < tuple.length ? tuple[i] : (rest ?? true), w);
    out.push(s.uniqueItems === true ? distinct(item, i, out) : item);
  }
  return out;
}

/** Keeps `uniqueItems` arrays valid when the item schema yields the same value each time. */
function distinct(item: unknown, i: number, before: readonly unknown[]): unknown {
  const seen = (v: unknown) => before.some((b) => JSON.stringify(b) === JSON.stringify(v));
  if (!seen(item)) return item;
  if (typeof item === "string") return `${item}-${i + 1}`;
  if (typeof item === "number") return item + i;
  if (isRecord(item)) return { ...item, [`item_${i + 1}`]: i + 1 };
  return item;
}

function numberOf(s: Schema, integer: boolean): number {
  const step = num(s.multipleOf) ?? (integer ? 1 : undefined);
  // Draft 4 spells exclusivity as booleans beside minimum/maximum; later drafts as numbers of their own.
  const exMin = typeof s.exclusiveMinimum === "number" ? s.exclusiveMinimum : s.exclusiveMinimum === true ? num(s.minimum) : undefined;
  const exMax = typeof s.exclusiveMaximum === "number" ? s.exclusiveMaximum : s.exclusiveMaximum === true ? num(s.maximum) : undefined;
  const min = exMin === undefined ? num(s.minimum) : undefined;
  const max = exMax === undefined ? num(s.maximum) : undefined;
  const above = (v: number) => (min === undefined || v >= min) && (exMin === undefined || v > exMin);
  const below = (v: number) => (max === undefined || v <= max) && (exMax === undefined || v < exMax);
  const lo = min ?? exMin;
  const hi = max ?? exMax;
  // 1 when the range allows it (a count, a page size, a quantity), else the nearest valid value to it.
  let v = lo !== undefined && lo >= 1 ? lo : hi !== undefined && hi <= 1 ? hi : 1;
  if (step !== undefined) {
    v = Math.ceil(v / step) * step;
    if (!above(v)) v += step;
    if (!below(v)) v = Math.floor((hi ?? v) / step) * step;
    if (!below(v)) v -= step;
  } else if (!above(v) || !below(v)) {
    v = lo !== undefined && hi !== undefined ? (lo + hi) / 2 : lo !== undefined ? lo + 1 : (hi as number) - 1;
  }
  return integer ? Math.round(v) : v;
}

function stringOf(s: Schema): string {
  const format = typeof s.format === "string" ? FORMATS[s.format] : undefined;
  const pattern = typeof s.pattern === "string" ? samplePattern(s.pattern) : undefined;
  let v = pattern ?? format ?? PLAIN_STRING;
  const minLength = num(s.minLength) ?? 0;
  const maxLength = num(s.maxLength) ?? Infinity;
  if ([...v].length < minLength) v = v + "x".repeat(minLength - [...v].length);
  if ([...v].length > maxLength) v = [...v].slice(0, maxLength).join("");
  return v;
}
