-- Fair claiming (src/store/fairClaim.ts): a planner takes the head of the tenant with
-- the fewest running tasks, a tenant's head being its highest-priority, oldest queued
-- task. This index holds only queued rows, in exactly that order per tenant, so
-- listing the tenants with queued work (a skip scan over the leading column) and
-- finding each one's head are a few index probes however long the backlog is.
-- The priority rank expression must stay identical to the one in fairClaim.ts.
CREATE INDEX tasks_queued_head_idx ON tasks (
  tenant,
  (CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END),
  created_at,
  id
) WHERE status = 'queued';
