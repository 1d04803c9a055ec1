import type { CompleteRequest, CompleteResponse } from "../contracts";

/** What the agent loop calls for a model turn: the rate-gateway over the broker, or a scripted model in tests. */
export interface LlmClient {
  /** `signal`: aborts the call in flight (a shutdown past its drain); the call then rejects with the signal's reason. */
  complete(req: CompleteRequest, signal?: AbortSignal): Promise<CompleteResponse>;
}
