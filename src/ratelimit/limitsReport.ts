/**
 * `GET /v1/limits`: each model's limits as the limiter applies them (configured,
 * tightened by what the provider reported), where they come from, and what the
 * cluster's calls used of them over the last window. Read from the buckets'
 * store, so in a cluster any gateway answers for every gateway.
 */
import type { LimitSource, LimitsView, ModelLimits } from "../contracts";
import type { Buckets } from "./buckets";
import { tighten } from "./limiter";
import type { LimitSpec, RateLimitTable } from "./limits";

export interface LimitsReportOptions {
  limits: RateLimitTable;
  windowMs: number;
}

/** The models of the table, the learned ones and `models` (the agents' tiers), each once, in name order. */
export async function limitsReport(buckets: Buckets, opts: LimitsReportOptions, models: Iterable<string>): Promise<LimitsView> {
  const names = new Set([...Object.keys(opts.limits), ...(await buckets.learnedModels()), ...models]);
  const rows = await Promise.all([...names].sort().map((model) => modelLimits(buckets, opts, model)));
  return { at: new Date().toISOString(), window_ms: opts.windowMs, models: rows };
}

async function modelLimits(buckets: Buckets, opts: LimitsReportOptions, model: string): Promise<ModelLimits> {
  const entry = opts.limits[model];
  const configured: LimitSpec | undefined = entry && { rpm: entry.rpm, itpm: entry.itpm, otpm: entry.otpm };
  const [learned, [rpm, itpm, otpm]] = await Promise.all([buckets.learnedLimits(model), buckets.usage(model, opts.windowMs)]);
  const source: LimitSource = entry ? "configured" : learned ? "learned" : "unknown";
  const applied = tighten(configured, learned);
  const limits = { rpm: applied?.rpm ?? null, itpm: applied?.itpm ?? null, otpm: applied?.otpm ?? null };
  const used = { rpm: round(rpm), itpm: round(itpm), otpm: round(otpm) };
  return {
    model,
    source,
    limits,
    used,
    headroom: { rpm: headroom(used.rpm, limits.rpm), itpm: headroom(used.itpm, limits.itpm), otpm: headroom(used.otpm, limits.otpm) },
  };
}

const round = (n: number, places = 3) => Math.round(n * 10 ** places) / 10 ** places;

/** To a millionth: a few calls against a limit of 100,000 still show. */
function headroom(used: number, limit: number | null): number | null {
  if (limit === null) return null;
  return round(Math.min(1, Math.max(0, 1 - used / limit)), 6);
}

/** Every model the agents' tiers name. */
export function tierModels(agents: readonly { tiers: Readonly<Record<string, { model: string }>> }[]): string[] {
  return [...new Set(agents.flatMap((a) => Object.values(a.tiers).map((t) => t.model)))];
}
