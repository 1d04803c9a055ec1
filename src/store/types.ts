import type { StoreMethods } from "../contracts";

/**
 * The system of record. Postgres in distributed mode, PGlite embedded; one SQL
 * code path, one contract test suite. Every write by a worker carries the fencing
 * token it got from `claimTask`; a stale token raises `StaleFenceError`.
 *
 * The methods that cross the broker come from the store's method table
 * (`src/contracts/store.ts`), where each is documented.
 */
export interface TaskStore extends StoreMethods {
  migrate(): Promise<void>;
  close(): Promise<void>;
}

