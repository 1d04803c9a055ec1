/**
 * Checkpoints of concurrent tasks in one statement: the group commit
 * (groupCommit.ts) of a store's plain `appendStep`s. Under load, every planner
 * slot waits on its checkpoint's commit, and each commit is a statement, a round
 * trip and a flush of the WAL of its own; sent together, the checkpoints that
 * arrive while another is on its way share all three. At low load nothing waits:
 * a checkpoint with nothing on the wire goes alone, through the one-row statement.
 *
 * The statement keeps each checkpoint's guarantees (src/store/pgTaskStore.ts):
 * - fenced: a task's row is updated, and its steps inserted, only where the task is
 *   running under the checkpoint's fence. The statement answers the task, step and
 *   fence of every checkpoint it stored; any other (a stale fence, a task not
 *   found) wrote nothing and is sent again alone, which answers it as a lone write;
 * - atomic: the usage added to a task and its steps commit together, or not at all.
 *   A batch that fails with an error the database answered (a step already stored:
 *   a retried checkpoint; a timeout; a deadlock) wrote nothing, and each of its
 *   checkpoints is sent again alone, answered as a lone write is. One whose
 *   connection is lost under it does not know whether it committed: each of its
 *   checkpoints gets the error a lone write gets for that (`UnavailableError`,
 *   retryable), and a retry of one that did commit passes as any retried
 *   checkpoint does, its usage counted once;
 * - two checkpoints of one task in a batch (the results of parallel tool calls, or
 *   one item's steps: a model turn's and its calls' results) add their usage
 *   together to the one row, and both steps are inserted;
 * - a task whose row another transaction holds (a claim, a lone checkpoint, a
 *   finish) is skipped, not waited for: its checkpoint goes alone and waits there,
 *   as it would have, while the batch's others commit. The rows a batch does lock
 *   are locked in the order of their ids.
 */
import type { NewStep, Usage } from "../contracts";

/**
 * A checkpoint's new `updated_at`: moved only once it is 5 s old, so that most checkpoints change no indexed
 * column of `tasks` and are written as heap-only updates (migration 016). Its one reader is the reaper's order of
 * running tasks, stalest first (it looks at 500 a sweep): a task whose planner died stops moving it, and among
 * more than 500 running it reaches the stalest at most 5 s later than it did (the default lease lasts 5 s).
 */
export const CHECKPOINT_UPDATED_AT = "CASE WHEN updated_at < now() - interval '5 seconds' THEN now() ELSE updated_at END";

/** One step of a checkpoint item. */
export interface CheckpointStep {
  step: NewStep;
  /** `step.data` as JSON text, as the one-row statement takes it. */
  data: string;
  usage: Usage | undefined;
}

/** A plain checkpoint (no ledger marks) as the statement takes it. */
export interface CheckpointItem extends CheckpointStep {
  taskId: string;
  fence: number;
  /**
   * The same task's next steps, in order (`appendSteps`). They are one item: a batch stores all of them or none,
   * and the item sent alone tries them in one statement, then writes them one by one, in order.
   */
  rest?: readonly CheckpointStep[];
}

/** An item's steps, in order. */
export const stepsOf = (c: CheckpointItem): CheckpointStep[] => [c, ...(c.rest ?? [])];

/**
 * Takes one array per column, in the order of the one-row checkpoint's values (`checkpointValues` in
 * pgTaskStore.ts, after the task's id and fence). Answers the task id, step and fence of every checkpoint it stored; one absent wrote nothing (its task not
 * running under its fence, or its row held by another transaction). Two checkpoints of one task and step must
 * not share a batch (the step's key would refuse the whole batch).
 */
export const APPEND_STEPS_SQL = `
    WITH input AS (
      SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::integer[], $4::text[], $5::integer[], $6::text[],
                           $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::numeric[])
        AS i(task_id, fence, step, kind, schema_version, data, input_tokens, output_tokens, cache_read_input_tokens,
             cache_creation_input_tokens, cost_usd)
    ), per_task AS (
      SELECT task_id, fence, max(step) AS step, sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
             sum(cache_read_input_tokens)::bigint AS cache_read_input_tokens,
             sum(cache_creation_input_tokens)::bigint AS cache_creation_input_tokens, sum(cost_usd) AS cost_usd
      FROM input GROUP BY task_id, fence
    ), locked AS (
      SELECT t.id, t.fence FROM tasks t JOIN per_task p ON p.task_id = t.id AND p.fence = t.fence
      WHERE t.id = ANY($1::uuid[]) AND t.status = 'running' ORDER BY t.id FOR NO KEY UPDATE OF t SKIP LOCKED
    ), task AS (
      UPDATE tasks t
      SET steps = GREATEST(t.steps, p.step),
          input_tokens = t.input_tokens + p.input_tokens,
          output_tokens = t.output_tokens + p.output_tokens,
          cache_read_input_tokens = t.cache_read_input_tokens + p.cache_read_input_tokens,
          cache_creation_input_tokens = t.cache_creation_input_tokens + p.cache_creation_input_tokens,
          cost_usd = t.cost_usd + p.cost_usd,
          updated_at = ${CHECKPOINT_UPDATED_AT}
      FROM per_task p JOIN locked l ON l.id = p.task_id AND l.fence = p.fence
      WHERE t.id = p.task_id AND t.fence = p.fence AND t.status = 'running'
      RETURNING t.id, t.fence
    )
    INSERT INTO steps (task_id, step, kind, schema_version, fence, data)
    SELECT i.task_id, i.step, i.kind, i.schema_version, i.fence, i.data::jsonb
    FROM input i JOIN task ON task.id = i.task_id AND task.fence = i.fence
    RETURNING task_id, step, fence`;

/** A task's step: two checkpoints of one must not share a batch. */
export const stepKey = (taskId: string, step: number): string => `${taskId.toLowerCase()}/${step}`;

/** A checkpoint's key in the statement's answer: its task, step and fence. */
export const checkpointKey = (taskId: string, step: number, fence: number): string => `${stepKey(taskId, step)}/${fence}`;
