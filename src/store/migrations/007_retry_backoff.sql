-- A task released after a passing failure (a provider outage, a database blip) is not
-- claimed again before `not_before`: its backoff. Fair claiming takes any queued task
-- for any wake-up, so the delay has to live with the task, not in when a wake-up comes.
-- NULL: claimable at once (every other release, every new task).
ALTER TABLE tasks ADD COLUMN not_before timestamptz;
