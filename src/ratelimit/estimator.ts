/**
 * Input-token estimates for reservations, made locally. `count_tokens` would be
 * exact, but it is a provider round trip of its own (latency on every call, and
 * a rate limit of its own); the estimate only has to be close, because each call
 * settles to the `usage` the provider reports. Start from ~4 characters per token
 * and learn, per model, the running ratio of actual to estimated tokens.
 */
import type { MessageParam, ToolSpec } from "../contracts";

const CHARS_PER_TOKEN = 4;
/** Weight of the newest observation in the running ratio. */
const ALPHA = 0.2;
/** A ratio outside this range means a broken observation, not a tokenizer. */
const MIN_RATIO = 0.25;
const MAX_RATIO = 4;

export interface EstimateInput {
  system: string;
  messages: readonly MessageParam[];
  tools: readonly ToolSpec[];
}

export function rawTokenEstimate(req: EstimateInput): number {
  const chars = req.system.length + JSON.stringify(req.messages).length + (req.tools.length > 0 ? JSON.stringify(req.tools).length : 0);
  return Math.max(1, Math.ceil(chars / CHARS_PER_TOKEN));
}

export class InputTokenEstimator {
  private readonly ratios = new Map<string, number>();

  ratio(model: string): number {
    return this.ratios.get(model) ?? 1;
  }

  /** Calibrated estimate for `model`, and the raw count to `observe` with afterwards. */
  estimate(model: string, req: EstimateInput): { tokens: number; raw: number } {
    const raw = rawTokenEstimate(req);
    return { tokens: Math.max(1, Math.ceil(raw * this.ratio(model))), raw };
  }

  observe(model: string, raw: number, actual: number): void {
    if (raw <= 0 || actual <= 0) return;
    const seen = Math.min(MAX_RATIO, Math.max(MIN_RATIO, actual / raw));
    const prev = this.ratios.get(model);
    this.ratios.set(model, prev === undefined ? seen : prev + ALPHA * (seen - prev));
  }
}
