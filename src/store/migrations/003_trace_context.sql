-- The task's trace context: the W3C `traceparent` of the span that submitted it
-- (the `invoke_agent` root span of the api). Every attempt, on whichever planner
-- and after any crash, starts its span as a child of it, so a task is one trace.
-- Null when tracing was off at submission (and for tasks from before this column).
ALTER TABLE tasks ADD COLUMN trace_context text;
