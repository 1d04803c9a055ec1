/**
 * Real Postgres, Redis and NATS for the suites that are about them. Each run gets
 * its own database, key prefix and namespace and removes them afterwards.
 *
 * Where a service cannot be reached, its suites are skipped loudly; with CI=true
 * or CLAWFLEET_REQUIRE_SERVICES=1 the run fails instead (see test/globalSetup.ts).
 */
import { randomUUID } from "node:crypto";
import { inject } from "vitest";
import pg from "pg";

export const POSTGRES_ADMIN_URL = process.env.CLAWFLEET_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const REDIS_TEST_URL = process.env.CLAWFLEET_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const NATS_TEST_URL = process.env.CLAWFLEET_TEST_NATS_URL ?? "nats://127.0.0.1:4222";

export type ServiceName = "postgres" | "redis" | "nats";

export function hasService(name: ServiceName): boolean {
  const available = inject("services");
  return available[name];
}

/** A unique lower-case id for databases, prefixes and namespaces of one test. */
export function uniqueId(prefix = "t"): string {
  return `${prefix}${randomUUID().replace(/-/g, "").slice(0, 16)}`;
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Creates a fresh database on the test Postgres server; `drop()` removes it. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `clawfleet_test_${uniqueId("")}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
