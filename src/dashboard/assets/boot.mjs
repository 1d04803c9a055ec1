/* global location */
// Loaded first, on its own (async): a page opened on a task (#/task/<id>) starts reading the first page of
// the task's steps while the rest of the dashboard's code is still loading.

import { api } from "./api.mjs";

/** Steps in the first page read, enough for the first screen (about 30 rows) and the rows around it. */
export const FIRST_PAGE = 200;

/** One page of a task's steps: at most `limit` after step `after`, with `next_after` (null on the last page). */
export function readStepsPage(id, after, limit, signal) {
  return api(`/v1/tasks/${encodeURIComponent(id)}/steps?after=${after}&limit=${limit}`, { signal });
}

let early = null;
const m = /^#\/task\/([0-9a-fA-F-]{36})$/.exec(location.hash);
if (m) {
  const id = m[1];
  const steps = readStepsPage(id, 0, FIRST_PAGE);
  // Taken by the task page; a failure is shown there, not reported as unhandled here.
  steps.catch(() => undefined);
  early = { id, steps };
}

/** The first page of steps read at load for task `id`, once; null for any other task, or the second time. */
export function takeEarlySteps(id) {
  if (!early || early.id !== id) return null;
  const { steps } = early;
  early = null;
  return steps;
}
