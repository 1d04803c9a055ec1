-- Cancelling a task (src/store/cancel.ts): who asked and why, kept with the task. The cancel
-- itself is status 'cancelled' (allowed since 001), finished_at, and a fence bump that refuses
-- every later write of the attempt that was running it. NULL on every task not cancelled.
ALTER TABLE tasks ADD COLUMN cancelled_by text, ADD COLUMN cancel_reason text;
