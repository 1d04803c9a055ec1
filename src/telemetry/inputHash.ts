/**
 * The identity of a tool call's input: sha256 of its canonical JSON (object keys
 * sorted at every depth, no whitespace), so `{"a":1,"b":2}` and `{"b":2,"a":1}`
 * are the same input. Used for `clawfleet.tool.input_hash` and duplicate-call detection.
 */
import { createHash } from "node:crypto";

/** JSON with object keys sorted; values JSON cannot hold are dropped or nulled as `JSON.stringify` does. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  }) ?? "null";
}

export function inputHash(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}
