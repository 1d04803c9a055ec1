/**
 * Validation of what arrives over the broker or the REST API. A bad call is a
 * `ValidationError` naming the field, never a crash.
 */
import type { z } from "zod";
import { ValidationError } from "../errors";

export function parseParams<T>(schema: z.ZodType<T>, params: unknown, what: string): T {
  const r = schema.safeParse(params);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join(".") : undefined;
  throw new ValidationError(`${what}: ${field ? `field "${field}": ` : ""}${issue?.message ?? "invalid"}`, {
    ...(field !== undefined ? { field } : {}),
    issues: r.error.issues.slice(0, 10).map((i) => ({ field: i.path.join("."), message: i.message })),
  });
}
