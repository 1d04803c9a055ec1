/**
 * Listing a tenant's tasks (`GET /v1/tasks`), newest first, a page at a time.
 * Paging is by keyset on (created_at, id): a page's `next_cursor` names the
 * last task it holds, so tasks submitted while a client pages neither shift
 * nor repeat what it has still to read. The cursor is opaque to clients
 * (src/store/taskList.ts writes and reads it).
 */
import { z } from "zod";
import { TaskViewSchema } from "./api";
import { TenantSchema } from "./keys";
import { TaskRecordSchema, TaskStatusSchema } from "./task";

/** A page holds this many tasks unless `limit` says otherwise... */
export const TASK_LIST_DEFAULT_LIMIT = 50;
/** ...and never more than this. */
export const TASK_LIST_MAX_LIMIT = 1000;

/** A cursor as a client hands it back: what a page answered, never built by the client. */
export const TaskCursorSchema = z.string().min(1).max(200);

/** What the store lists: one tenant's tasks, optionally of one status and one agent. */
export const TaskListQuerySchema = z.object({
  tenant: TenantSchema,
  status: TaskStatusSchema.optional(),
  agent: z.string().min(1).max(100).optional(),
  limit: z.number().int().min(1).max(TASK_LIST_MAX_LIMIT),
  /** The previous page's `next_cursor`; absent for the first page. */
  cursor: TaskCursorSchema.optional(),
});
export type TaskListQuery = z.infer<typeof TaskListQuerySchema>;

/** A task as a list shows it: no input, metadata or result, which can be large; `GET /v1/tasks/{id}` has them. */
export const TaskSummarySchema = TaskRecordSchema.pick({
  id: true,
  agent: true,
  status: true,
  priority: true,
  error: true,
  attempts: true,
  steps: true,
  usage: true,
  prompt_version: true,
  tenant: true,
  created_at: true,
  started_at: true,
  finished_at: true,
});
export type TaskSummary = z.infer<typeof TaskSummarySchema>;

/** One page from the store. `next_cursor` is null on the last page. */
export const TaskListSchema = z.object({ tasks: z.array(TaskSummarySchema), next_cursor: z.string().nullable() });
export type TaskList = z.infer<typeof TaskListSchema>;

/** A listed task in `GET /v1/tasks`: the fields of `GET /v1/tasks/{id}` but input, metadata and result. */
export const TaskSummaryViewSchema = TaskViewSchema.pick({
  id: true,
  agent: true,
  status: true,
  priority: true,
  error: true,
  attempts: true,
  steps: true,
  prompt_version: true,
  tenant: true,
  created_at: true,
  started_at: true,
  finished_at: true,
}).extend({ usage: TaskViewSchema.shape.usage.omit({ by_model: true }) });
export type TaskSummaryView = z.infer<typeof TaskSummaryViewSchema>;

/** `GET /v1/tasks`: newest first; pass `next_cursor` as `?cursor=` for the next page (null: this is the last). */
export const TaskListViewSchema = z.object({ tasks: z.array(TaskSummaryViewSchema), next_cursor: z.string().nullable() });
export type TaskListView = z.infer<typeof TaskListViewSchema>;

/** `GET /v1/tasks`'s query: every parameter optional; one that is not listed here is refused (a typo must not list everything). */
export const TaskListParamsSchema = z
  .object({
    status: TaskStatusSchema.optional(),
    agent: z.string().min(1).max(100).optional(),
    limit: z.coerce.number().int().min(1).max(TASK_LIST_MAX_LIMIT).default(TASK_LIST_DEFAULT_LIMIT),
    cursor: TaskCursorSchema.optional(),
  })
  .strict();
