/**
 * The rate-limit allowance of one model turn counts the time a refused call spent queued at the gateway, not
 * only the planner's own back-offs: a gateway that holds each call up to its longest wait before refusing must
 * not stretch one turn to many times the allowance.
 */
import { describe, expect, it } from "vitest";
import { callModelWithRetry } from "../../src/agent/modelRetry";
import type { CompleteRequest, CompleteResponse } from "../../src/contracts";
import { RateLimitedError } from "../../src/errors";
import type { LlmClient } from "../../src/llm/client";

const request = { taskId: "00000000-0000-4000-8000-000000000001", agent: "a", step: 1, tier: "default", model: "m", maxTokens: 10, system: "", messages: [], tools: [] } as unknown as CompleteRequest;

/** A gateway that keeps each call `queuedMs` in its queue, then refuses it with a short retry-after. */
function refusingAfter(queuedMs: number): LlmClient & { calls: number } {
  const client = {
    calls: 0,
    complete(): Promise<CompleteResponse> {
      client.calls++;
      return new Promise((_resolve, reject) => setTimeout(() => reject(new RateLimitedError("queued too long", { retryAfter: 0.01 })), queuedMs));
    },
  };
  return client;
}

describe("model retry - the rate-limit allowance", () => {
  it("counts the time refused calls spent queued at the gateway", async () => {
    const llm = refusingAfter(150);
    const started = performance.now();
    await expect(callModelWithRetry(llm, request, new AbortController().signal, { maxRateLimitWaitMs: 400 })).rejects.toBeInstanceOf(RateLimitedError);
    // 150 ms queued + 50 ms back-off per round: the allowance is spent on the third refusal, not after 40 rounds
    // of 10 ms back-offs (8 s) as when only the back-offs counted.
    expect(llm.calls).toBeLessThanOrEqual(3);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
