import type { CompleteRequest, CompleteResponse } from "../contracts";

/** What the agent loop calls for a model turn: the rate-gateway over the broker, or a scripted model in tests. */
export interface LlmClient {
  complete(req: CompleteRequest): Promise<CompleteResponse>;
}
