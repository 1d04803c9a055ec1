/**
 * Real Postgres, Redis and NATS for the suites that are about them. Each run gets
 * its own database, key prefix and namespace and removes them afterwards
 * (testkit/scratch.ts, shared with bench/).
 *
 * Where a service cannot be reached, its suites are skipped loudly; with CI=true
 * or CLAWFLEET_REQUIRE_SERVICES=1 the run fails instead (see test/globalSetup.ts).
 */
import { inject } from "vitest";

export {
  cleanRedis,
  createScratch,
  createTestDatabase,
  NATS_TEST_URL,
  POSTGRES_ADMIN_URL,
  REDIS_TEST_URL,
  uniqueId,
  type Scratch,
  type TestDatabase,
} from "../../testkit/scratch";

export type ServiceName = "postgres" | "redis" | "nats";

export function hasService(name: ServiceName): boolean {
  const available = inject("services");
  return available[name];
}
