/** The body of `POST /v1/tasks/{id}/cancel`: none, or `{"reason"?: string}`. */
import { CancelTaskBodySchema, parseParams, type CancelTaskBody } from "../contracts";
import { ValidationError } from "../errors";

export function cancelBodyOf(body: unknown): CancelTaskBody {
  if (body === undefined || body === null) return {};
  if (typeof body !== "object" || Array.isArray(body)) throw new ValidationError("the request body must be a JSON object", { field: "body" });
  return parseParams(CancelTaskBodySchema, body, "invalid cancel");
}
