/**
 * Approval gates (README, "Approval gates"): the call a task waits on, the
 * store's records and answers, the REST bodies and views, the intake actions'
 * params and the control event of a decision.
 */
import { z } from "zod";
import { TenantSchema } from "./keys";
import { StepNumberSchema, TaskIdSchema, TaskRecordSchema, TaskRefSchema, TaskStatusSchema, TimestampSchema } from "./task";

export const APPROVAL_DECISIONS = ["approve", "reject"] as const;
/** What an operator decides. */
export const ApprovalDecisionSchema = z.enum(APPROVAL_DECISIONS);
export type ApprovalDecision = z.infer<typeof ApprovalDecisionSchema>;

/** What a recorded approval holds: an operator's decision, or `timeout` (the reaper's, past the deadline). */
export const RecordedDecisionSchema = z.enum([...APPROVAL_DECISIONS, "timeout"]);
export type RecordedDecision = z.infer<typeof RecordedDecisionSchema>;

/** Why an operator decided; a rejection's reason is what the model is told. */
export const ApprovalReasonSchema = z.string().max(1_000);

/** Who decided: an API key's id, `anonymous` (authentication off) or `repl:<node id>`. */
export const DecidedBySchema = z.string().min(1).max(200);

/** The longest an agent may let a call wait: 30 days. */
export const MAX_APPROVAL_TIMEOUT_SECONDS = 30 * 24 * 3600;

/** The call a task parks on, as the planner asks the store to record it. */
export const ApprovalRequestSchema = z.object({
  step: StepNumberSchema,
  tool_use_id: z.string().min(1).max(255),
  tool: z.string().min(1).max(255),
  input: z.unknown(),
  /** From the request on: past it the reaper fails the task (`approval_timeout`). */
  timeout_seconds: z.number().int().nonnegative().max(MAX_APPROVAL_TIMEOUT_SECONDS),
});
export type ApprovalRequest = z.infer<typeof ApprovalRequestSchema>;

/** One gated call as the store keeps it (migration 010). */
export const ApprovalSchema = z.object({
  task_id: TaskIdSchema,
  step: StepNumberSchema,
  tool_use_id: z.string(),
  tool: z.string(),
  input: z.unknown(),
  requested_at: TimestampSchema,
  deadline: TimestampSchema,
  decision: RecordedDecisionSchema.nullable(),
  reason: z.string().nullable(),
  decided_by: z.string().nullable(),
  decided_at: TimestampSchema.nullable(),
});
export type Approval = z.infer<typeof ApprovalSchema>;

/** A decision as the store records it. `tool_use_id`, when given, must name the pending call. */
export const DecisionSchema = z.object({
  decision: ApprovalDecisionSchema,
  reason: ApprovalReasonSchema.optional(),
  by: DecidedBySchema,
  tool_use_id: z.string().min(1).max(255).optional(),
});
export type Decision = z.infer<typeof DecisionSchema>;

/**
 * The store's `decideApproval` answer. `recorded`: this call decided `approval` and put the task back to
 * `queued`; `already_decided`: the task's latest gated call was decided before (`approval`, as it was);
 * `expired`: the pending call's deadline passed (the reaper fails the task); `not_awaiting`: the task waits
 * on no call (`status` says what it is doing; `approval`, if any, is its latest, cancelled under it or timed
 * out); `not_found`: no such task for the tenant.
 */
export const DecideResultSchema = z.object({
  outcome: z.enum(["recorded", "already_decided", "expired", "not_awaiting", "not_found"]),
  status: TaskStatusSchema.nullable(),
  /** The task's tenant; null when not found. */
  tenant: z.string().nullable(),
  approval: ApprovalSchema.nullable(),
});
export type DecideResult = z.infer<typeof DecideResultSchema>;

/** A pending call with its task's labels, as the store lists them. */
export const PendingApprovalSchema = ApprovalSchema.extend({ agent: z.string(), prompt_version: z.string(), tenant: z.string() });
export type PendingApproval = z.infer<typeof PendingApprovalSchema>;

/** A task the reaper failed because its call's deadline passed: the task after the write, and the call. */
export const ExpiredApprovalSchema = z.object({ task: TaskRecordSchema, approval: ApprovalSchema });
export type ExpiredApproval = z.infer<typeof ExpiredApprovalSchema>;

// ------------------------------------------------------------------ REST

/** Body of `POST /v1/tasks/{id}/approval`. */
export const ApprovalBodySchema = z
  .object({
    decision: ApprovalDecisionSchema,
    reason: ApprovalReasonSchema.optional().describe("Why; a rejection's reason is what the model is told."),
    tool_use_id: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe("The pending call's `tool_use.id`: the decision then applies to that call only (409 if another is pending)."),
  })
  .strict();
export type ApprovalBody = z.infer<typeof ApprovalBodySchema>;

/** The 200 answer: the decision is committed and the task is back in the queue. */
export const ApprovalDecidedSchema = z.object({ task_id: TaskIdSchema, decision: ApprovalDecisionSchema, status: TaskStatusSchema });
export type ApprovalDecided = z.infer<typeof ApprovalDecidedSchema>;

/** `?status=` of `GET /v1/approvals`: only the pending calls are listed. */
export const ApprovalStatusQuerySchema = z.enum(["pending"]).default("pending");
/** `?limit=` of `GET /v1/approvals`. */
export const ApprovalLimitSchema = z.coerce.number().int().min(1).max(1000).default(100);

export const ApprovalQuerySchema = z.object({ status: ApprovalStatusQuerySchema, limit: ApprovalLimitSchema }).strip();

/** One entry of `GET /v1/approvals?status=pending`: the task and the exact call it waits on. */
export const PendingApprovalViewSchema = z.object({
  task_id: TaskIdSchema,
  agent: z.string(),
  prompt_version: z.string(),
  step: StepNumberSchema,
  tool_use: z.object({ id: z.string(), name: z.string(), input: z.unknown() }),
  requested_at: TimestampSchema,
  deadline: TimestampSchema,
});
export type PendingApprovalView = z.infer<typeof PendingApprovalViewSchema>;

export const PendingApprovalsSchema = z.object({ approvals: z.array(PendingApprovalViewSchema) });
export type PendingApprovals = z.infer<typeof PendingApprovalsSchema>;

// ------------------------------------------------------------------ intake actions

/** `intake.decideApproval`: `body` as the client sent it; `tenant` from the API key (callers inside the cluster may leave it out). */
export const DecideApprovalParamsSchema = z.object({ taskId: TaskRefSchema, body: z.unknown(), by: DecidedBySchema, tenant: TenantSchema.optional() });
export type DecideApprovalParams = z.infer<typeof DecideApprovalParamsSchema>;

/** `intake.approvals`: `query` as the client sent it. */
export const ListApprovalsParamsSchema = z.object({ query: z.unknown().optional(), tenant: TenantSchema.optional() });
export type ListApprovalsParams = z.infer<typeof ListApprovalsParamsSchema>;

// ------------------------------------------------------------------ control event

/** Emitted by the intake node that recorded a decision, once it is committed. */
export const APPROVAL_DECIDED_EVENT = "clawfleet.control.approval_decided";

export const ApprovalDecidedEventSchema = z.object({
  task_id: TaskIdSchema,
  tenant: z.string(),
  step: StepNumberSchema,
  tool: z.string(),
  decision: ApprovalDecisionSchema,
  by: DecidedBySchema,
  reason: z.string().nullable(),
  at: TimestampSchema,
  node: z.string(),
});
export type ApprovalDecidedEvent = z.infer<typeof ApprovalDecidedEventSchema>;
