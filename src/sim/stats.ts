/** Counters the simulator keeps for tests and benchmarks (`GET /_sim/stats`). */

export interface SimStats {
  /** Requests to anything but `/_sim/*`, whatever their outcome. */
  requests: number;
  /** `/v1/messages` requests that passed validation, by model. */
  by_model: Record<string, number>;
  /** API responses by HTTP status code. */
  responses_by_status: Record<string, number>;
  /** tool_use blocks answered, by tool name. */
  tool_uses: Record<string, number>;
  /** Usage billed on successful `/v1/messages` responses. */
  input_tokens: number;
  output_tokens: number;
}

export class StatsCounter {
  private s: SimStats = StatsCounter.empty();

  private static empty(): SimStats {
    return { requests: 0, by_model: {}, responses_by_status: {}, tool_uses: {}, input_tokens: 0, output_tokens: 0 };
  }

  request(): void {
    this.s.requests += 1;
  }

  model(model: string): void {
    this.s.by_model[model] = (this.s.by_model[model] ?? 0) + 1;
  }

  status(status: number): void {
    const key = String(status);
    this.s.responses_by_status[key] = (this.s.responses_by_status[key] ?? 0) + 1;
  }

  toolUse(name: string): void {
    this.s.tool_uses[name] = (this.s.tool_uses[name] ?? 0) + 1;
  }

  usage(input: number, output: number): void {
    this.s.input_tokens += input;
    this.s.output_tokens += output;
  }

  snapshot(): SimStats {
    return structuredClone(this.s);
  }

  reset(): void {
    this.s = StatsCounter.empty();
  }
}
