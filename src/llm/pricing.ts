/**
 * Price table, USD per million tokens. Cache reads are priced separately (they
 * cost a tenth of fresh input on Anthropic's list). Unknown models cost 0 and are
 * reported by `knownModel` so a misconfigured tier is visible rather than free.
 */
import { z } from "zod";
import type { LlmUsage, Usage } from "../contracts";

export interface ModelPrice {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

export const DEFAULT_PRICES: Readonly<Record<string, ModelPrice>> = {
  "claude-haiku-5-5": { input: 1, output: 5, cacheRead: 0.1, cacheWrite: 1.25 },
  "claude-sonnet-5-5": { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 },
  "claude-opus-5-5": { input: 5, output: 25, cacheRead: 0.5, cacheWrite: 6.25 },
  "claude-haiku-4-5": { input: 1, output: 5, cacheRead: 0.1, cacheWrite: 1.25 },
  "claude-sonnet-4-5": { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 },
  "claude-opus-4-5": { input: 5, output: 25, cacheRead: 0.5, cacheWrite: 6.25 },
};

/**
 * `CLAWFLEET_PRICES`: entries over the built-in table, USD per million tokens,
 * e.g. `{"claude-sonnet-5-5": {"input": 3, "output": 15, "cache_read": 0.3}}`.
 * Cache reads default to a tenth of input, cache writes to 1.25 times input.
 */
export const PricesSchema = z
  .record(
    z.string().min(1),
    z
      .object({
        input: z.number().nonnegative(),
        output: z.number().nonnegative(),
        cache_read: z.number().nonnegative().optional(),
        cache_write: z.number().nonnegative().optional(),
      })
      .strict(),
  )
  .transform((table) =>
    Object.fromEntries(
      Object.entries(table).map(([model, p]): [string, ModelPrice] => [
        model,
        { input: p.input, output: p.output, cacheRead: p.cache_read ?? p.input / 10, cacheWrite: p.cache_write ?? p.input * 1.25 },
      ]),
    ),
  );

export class PriceTable {
  constructor(private readonly prices: Readonly<Record<string, ModelPrice>> = DEFAULT_PRICES) {}

  knownModel(model: string): boolean {
    return this.lookup(model) !== undefined;
  }

  /** Model ids may carry a date suffix (`claude-sonnet-4-5-20250929`): match the longest known prefix. */
  private lookup(model: string): ModelPrice | undefined {
    const exact = this.prices[model];
    if (exact) return exact;
    const key = Object.keys(this.prices)
      .filter((k) => model.startsWith(k))
      .sort((a, b) => b.length - a.length)[0];
    return key === undefined ? undefined : this.prices[key];
  }

  /** A response's usage as a checkpoint and the task record carry it: token counts plus their cost. */
  usageOf(model: string, usage: LlmUsage): Usage {
    return {
      input_tokens: usage.input_tokens,
      output_tokens: usage.output_tokens,
      cache_read_input_tokens: usage.cache_read_input_tokens,
      cache_creation_input_tokens: usage.cache_creation_input_tokens,
      cost_usd: this.cost(model, usage),
    };
  }

  cost(model: string, usage: LlmUsage): number {
    const p = this.lookup(model);
    if (!p) return 0;
    const usd =
      (usage.input_tokens * p.input +
        usage.output_tokens * p.output +
        usage.cache_read_input_tokens * p.cacheRead +
        usage.cache_creation_input_tokens * p.cacheWrite) /
      1_000_000;
    return Math.round(usd * 1e8) / 1e8;
  }
}
