/**
 * How the client commands show the API's answers to a person: aligned tables,
 * `name  value` blocks, compact JSON cut to a width, tokens, money and
 * durations. Pure functions of the answer; `--json` bypasses all of it.
 */

/** Aligned columns; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths: number[] = [];
  for (const r of all) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd()).join("\n");
}

/** `name  value` lines, names aligned; a multi-line value is indented under its name. */
export function fields(pairs: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs
    .map(([k, v]) => `${k.padEnd(width)}  ${v.split("\n").join(`\n${" ".repeat(width + 2)}`)}`)
    .join("\n");
}

export const cut = (text: string, max: number): string => (text.length > max ? `${text.slice(0, Math.max(0, max - 1))}…` : text);

/** One line of JSON, cut to `max` characters. */
export const compact = (v: unknown, max = 80): string => cut(typeof v === "string" ? v : (JSON.stringify(v) ?? "null"), max);

/** Pretty JSON for a value shown whole (a task's result); a string is shown as it is. */
export const pretty = (v: unknown): string => (typeof v === "string" ? v : (JSON.stringify(v, null, 2) ?? "null"));

export const money = (usd: number): string => `$${usd.toFixed(usd >= 0.01 ? 4 : 6)}`;

export const tokens = (input: number, output: number): string => `${input}/${output}`;

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Milliseconds from `from` to `to` (ISO times); undefined when either is missing. */
export function between(from: unknown, to: unknown): number | undefined {
  if (typeof from !== "string" || typeof to !== "string") return undefined;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) ? ms : undefined;
}

/** A cell: strings as they are, null and undefined as "-", anything else as compact JSON. */
export function cell(v: unknown, max = 60): string {
  if (v === null || v === undefined) return "-";
  if (typeof v === "string") return cut(v, max);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x === "string" || typeof x === "number")) return cut(v.join(","), max);
  return compact(v, max);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Any answer, shown as well as its shape allows: a list of objects as a table (columns in first-seen
 * order), an object holding one such list as that table (its other fields as lines above), any other
 * object as `name  value` lines. For answers whose shape the client does not know field by field.
 */
export function render(body: unknown): string {
  if (Array.isArray(body)) return body.length === 0 ? "(none)" : body.every(isRecord) ? objectTable(body) : body.map((v) => cell(v, 200)).join("\n");
  if (!isRecord(body)) return cell(body, 10_000);
  const lists = Object.entries(body).filter(([, v]) => Array.isArray(v) && v.every(isRecord));
  if (lists.length === 1) {
    const [name, list] = lists[0] as [string, Record<string, unknown>[]];
    const rest = Object.entries(body).filter(([k]) => k !== name);
    const head = rest.length > 0 ? `${fields(rest.map(([k, v]) => [k, cell(v, 200)]))}\n` : "";
    return `${head}${list.length === 0 ? `${name}: (none)` : objectTable(list)}`;
  }
  return fields(Object.entries(body).map(([k, v]) => [k, isRecord(v) || Array.isArray(v) ? compact(v, 200) : cell(v, 10_000)]));
}

function objectTable(rows: readonly Record<string, unknown>[]): string {
  const columns: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!columns.includes(k)) columns.push(k);
  return table(
    columns.map((c) => c.toUpperCase()),
    rows.map((r) => columns.map((c) => cell(r[c], 40))),
  );
}
