/**
 * A run's own slice of the shared Postgres, Redis and NATS: a fresh database and a
 * namespace (the prefix of its Redis keys and NATS subjects), removed afterwards.
 * Shared with the bench/ scripts; test/helpers/services.ts adds the vitest side.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";

export const POSTGRES_ADMIN_URL = process.env.CLAWFLEET_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const REDIS_TEST_URL = process.env.CLAWFLEET_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const NATS_TEST_URL = process.env.CLAWFLEET_TEST_NATS_URL ?? "nats://127.0.0.1:4222";

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
export async function createTestDatabase(namePrefix = "clawfleet_test_"): Promise<TestDatabase> {
  const name = `${namePrefix}${uniqueId("")}`;
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

/** Deletes every Redis key of a namespace (streams, leases). Quiet when the server is gone: a throwaway one may be. */
export async function cleanRedis(redisUrl: string, namespace: string): Promise<void> {
  const { Redis } = await import("ioredis");
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const keys = await redis.keys(`${namespace}*`);
    if (keys.length > 0) await redis.del(...keys);
  } catch {
    // a throwaway server already gone
  } finally {
    redis.disconnect();
  }
}

/** One run's database and namespace on the shared test services. */
export interface Scratch {
  namespace: string;
  db: TestDatabase;
  /** What a `clawfleet start` process needs to join this run with the given SERVICES. */
  env(services: string): Record<string, string>;
  /** Drops the database and deletes the namespace's Redis keys. */
  remove(): Promise<void>;
}

export async function createScratch(namespacePrefix: string, dbNamePrefix?: string): Promise<Scratch> {
  const db = await createTestDatabase(dbNamePrefix);
  const namespace = uniqueId(namespacePrefix);
  return {
    namespace,
    db,
    // Authentication (on by default when distributed) has its own suites; these clusters test other contracts.
    env: (services) => ({ TRANSPORTER: NATS_TEST_URL, REDIS_URL: REDIS_TEST_URL, DATABASE_URL: db.url, CLAWFLEET_NAMESPACE: namespace, SERVICES: services, CLAWFLEET_AUTH: "off" }),
    async remove() {
      await db.drop();
      await cleanRedis(REDIS_TEST_URL, namespace);
    },
  };
}
