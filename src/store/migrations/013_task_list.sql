-- Listing a tenant's tasks newest first, a page at a time (`GET /v1/tasks`, src/store/taskList.ts):
-- keyset paging on (created_at, id) reads one index range per page however deep the client has paged.
-- With a status, tasks_tenant_status_created_idx (migration 005) serves instead.
CREATE INDEX tasks_tenant_created_id_idx ON tasks (tenant, created_at, id);
