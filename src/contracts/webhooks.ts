/**
 * Completion webhooks (README, "Webhooks"): what a submit asks for, the body
 * a receiver gets, the outbox rows the delivery loop claims and records, and
 * the delivery as `GET /v1/tasks/{id}` shows it.
 */
import { z } from "zod";
import { TaskErrorSchema, TaskIdSchema, TaskStatusSchema, TimestampSchema, WEBHOOK_URL_MAX } from "./task";

export const WEBHOOK_EVENT_TYPES = ["task.succeeded", "task.failed", "task.cancelled"] as const;
export const WebhookEventTypeSchema = z.enum(WEBHOOK_EVENT_TYPES);
export type WebhookEventType = z.infer<typeof WebhookEventTypeSchema>;

/** A secret's name as its tenant knows it; CLAWFLEET_WEBHOOK_SECRETS writes another tenant's than `default` as `<tenant>:<id>`. */
export const WebhookSecretIdSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "a secret id is letters, digits, '_', '.' and '-'");

/** `webhook` of `POST /v1/tasks`. */
export const WebhookRequestSchema = z
  .object({
    url: z.string().min(1).max(WEBHOOK_URL_MAX).describe("http(s) URL the task's completion is POSTed to; it must resolve to public addresses only"),
    secret_id: WebhookSecretIdSchema.describe("which configured secret signs the deliveries; the default one when left out").optional(),
  })
  .strict();
export type WebhookRequest = z.infer<typeof WebhookRequestSchema>;

/** The body of every delivery: the task as it ended. */
export const WebhookPayloadSchema = z.object({
  type: WebhookEventTypeSchema,
  /** When the task ended. */
  timestamp: TimestampSchema,
  data: z.object({
    id: TaskIdSchema,
    /** The tenant the task belongs to: a receiver shared by tenants can check it is the one it expects. */
    tenant: z.string(),
    agent: z.string(),
    status: TaskStatusSchema,
    result: z.unknown(),
    error: TaskErrorSchema.nullable(),
    usage: z.object({
      input_tokens: z.number().nonnegative(),
      output_tokens: z.number().nonnegative(),
      cache_read_input_tokens: z.number().nonnegative(),
      cost_usd: z.number().nonnegative(),
    }),
    prompt_version: z.string(),
    finished_at: TimestampSchema,
  }),
});
export type WebhookPayload = z.infer<typeof WebhookPayloadSchema>;

/** `pending` until a 2xx answer (`delivered`) or until its retries give up (`failed`). */
export const WEBHOOK_DELIVERY_STATES = ["pending", "delivered", "failed"] as const;
export const WebhookDeliveryStateSchema = z.enum(WEBHOOK_DELIVERY_STATES);
export type WebhookDeliveryState = z.infer<typeof WebhookDeliveryStateSchema>;

/** The `webhook-id` header: the same on every attempt of one event. */
export const WebhookIdSchema = z.string().min(1).max(64);

/** One outbox row as a delivery loop claimed it: one attempt to make. */
export const WebhookClaimSchema = z.object({
  id: WebhookIdSchema,
  task_id: TaskIdSchema,
  /** The task's tenant: its secrets are the ones that may sign. */
  tenant: z.string(),
  type: WebhookEventTypeSchema,
  url: z.string(),
  /** Null: the tenant's default secret. */
  secret_id: z.string().nullable(),
  /** The exact body to send and sign. */
  payload: z.string(),
  /** This attempt's number, counted from 1; it fences the write of its outcome. */
  attempt: z.number().int().positive(),
  created_at: TimestampSchema,
});
export type WebhookClaim = z.infer<typeof WebhookClaimSchema>;

/** How one attempt went, and what comes next. */
export const WebhookAttemptResultSchema = z.object({
  started_at: TimestampSchema,
  duration_ms: z.number().int().nonnegative(),
  /** The receiver's status code; null when no answer came (refused URL, connection error, timeout). */
  status_code: z.number().int().min(100).max(999).nullable(),
  error: z.string().max(1000).nullable(),
  /** `delivered` on a 2xx; `pending` with `retry_in_ms` for another attempt; `failed` when retries give up. */
  next: z.discriminatedUnion("state", [
    z.object({ state: z.literal("delivered") }),
    z.object({ state: z.literal("pending"), retry_in_ms: z.number().int().nonnegative().max(86_400_000 * 7) }),
    z.object({ state: z.literal("failed") }),
  ]),
});
export type WebhookAttemptResult = z.infer<typeof WebhookAttemptResultSchema>;

/** One attempt as the task view lists it. */
export const WebhookAttemptViewSchema = z.object({
  webhook_id: WebhookIdSchema,
  type: WebhookEventTypeSchema,
  attempt: z.number().int().positive(),
  at: TimestampSchema,
  /** Null when the delivering process stopped mid-attempt. */
  duration_ms: z.number().int().nonnegative().nullable(),
  status_code: z.number().int().nullable(),
  error: z.string().nullable(),
});
export type WebhookAttemptView = z.infer<typeof WebhookAttemptViewSchema>;

/**
 * `webhook` of `GET /v1/tasks/{id}`: no secret, only its name. `state` is the latest event's delivery,
 * `waiting` while the task has not ended; `attempts` lists every attempt of every event, oldest first.
 */
export const TaskWebhookViewSchema = z.object({
  url: z.string(),
  secret_id: z.string().nullable(),
  state: z.enum(["waiting", ...WEBHOOK_DELIVERY_STATES]),
  /** The latest event's `webhook-id`; null while waiting. */
  webhook_id: WebhookIdSchema.nullable(),
  /** When the next attempt is due, while `pending`. */
  next_attempt_at: TimestampSchema.nullable(),
  attempts: z.array(WebhookAttemptViewSchema),
});
export type TaskWebhookView = z.infer<typeof TaskWebhookViewSchema>;
