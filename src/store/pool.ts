/**
 * One `pg.Pool` for both back ends: Postgres when a `DATABASE_URL` is given,
 * PGlite (embedded, in-process) otherwise, through a connection that hands pg's
 * protocol messages to PGlite (pgliteConnection.ts), so the store runs the same
 * SQL over the same driver either way.
 */
import fs from "node:fs";
import path from "node:path";
import pg from "pg";
import { ConfigError } from "../errors";
import { connectError, redactDatabaseUrl } from "./dbErrors";
import { PgliteConnection } from "./pgliteConnection";

export type StoreKind = "postgres" | "pglite";

/** Where pool-level trouble goes; Moleculer's logger and `RedisLogger` fit. */
export interface StoreLogger {
  warn(msg: string): void;
}

export interface PoolOptions {
  /** `postgres://…`; when set, Postgres is used and `dataDir` is ignored. */
  databaseUrl?: string;
  /** PGlite data folder (created if missing), or `memory://` to keep nothing on disk. */
  dataDir?: string;
  /** Postgres connections. PGlite is single-session, so its pool is always 1. @default 10 */
  max?: number;
  /**
   * Postgres connections of their own for new tasks (`submitPool`), beside `max`: a submit never waits
   * for a connection behind the planners' checkpoint writes. PGlite has one session, shared. @default 2
   */
  submitMax?: number;
  /** Server-side limit per statement (Postgres). @default 30000 */
  statementTimeoutMs?: number;
  /** Limit on opening a connection (Postgres). @default 5000 */
  connectionTimeoutMs?: number;
  /**
   * Limit on waiting for a connection of a full pool (Postgres). A burst of store calls (a planner handing
   * 2,000 tasks back at once) queues here for longer than a connection takes to open; that is no outage.
   * @default 60000
   */
  acquireTimeoutMs?: number;
  /** @default one JSON line on stderr */
  logger?: StoreLogger;
}

export interface PoolHandle {
  pool: pg.Pool;
  /** The connections kept for new tasks (`PoolOptions.submitMax`); PGlite's is `pool` itself. */
  submitPool: pg.Pool;
  kind: StoreKind;
  /** The database's address without credentials, for logs and error messages. */
  target: string;
  /** Ends the pool (and closes PGlite, flushing its data dir). Idempotent. */
  close(): Promise<void>;
}

const stderrLogger: StoreLogger = {
  warn(msg) {
    process.stderr.write(`${JSON.stringify({ level: "warn", component: "store", msg })}\n`);
  },
};

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

/**
 * Without this listener, an error on an idle client (Postgres restarted, network
 * cut) is an unhandled 'error' event and kills the process. The pool already
 * drops that client; the next query opens a fresh one or fails as Unavailable.
 */
function watchIdleErrors(pool: pg.Pool, logger: StoreLogger, target: string): void {
  pool.on("error", (err) => {
    logger.warn(`idle database connection to ${target} failed and was dropped from the pool: ${err.message}`);
  });
}

/** Opens the pool and proves it answers; connection failures are `UnavailableError`s. */
export async function createPool(opts: PoolOptions): Promise<PoolHandle> {
  const logger = opts.logger ?? stderrLogger;
  if (opts.databaseUrl !== undefined) return createPostgresPool(opts.databaseUrl, opts, logger);
  if (opts.dataDir !== undefined) return createPglitePool(opts.dataDir, logger);
  throw new ConfigError("DATABASE_URL", "set DATABASE_URL for Postgres, or give a PGlite data dir (CLAWFLEET_DATA_DIR)");
}

async function createPostgresPool(databaseUrl: string, opts: PoolOptions, logger: StoreLogger): Promise<PoolHandle> {
  const target = redactDatabaseUrl(databaseUrl);
  const connectMs = opts.connectionTimeoutMs ?? 5_000;
  /**
   * pg-pool applies its one `connectionTimeoutMillis` both to opening a connection and to waiting for one
   * of a full pool. The client keeps the short limit on opening (an unreachable database is still said
   * at once); the pool's limit is the wait in its queue.
   */
  class TimedClient extends pg.Client {
    constructor(config?: pg.ClientConfig) {
      super({ ...config, connectionTimeoutMillis: connectMs });
    }
  }
  const poolOf = (max: number): pg.Pool =>
    new pg.Pool({
      Client: TimedClient,
      connectionString: databaseUrl,
      max,
      connectionTimeoutMillis: Math.max(connectMs, opts.acquireTimeoutMs ?? 60_000),
      statement_timeout: opts.statementTimeoutMs ?? 30_000,
      // A worker that dies inside a transaction must not hold row locks until TCP notices.
      idle_in_transaction_session_timeout: 60_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: "clawfleet",
    });
  const pool = poolOf(opts.max ?? 10);
  // Opened on the first submit: a node that takes none never connects it.
  const submitPool = poolOf(Math.max(1, opts.submitMax ?? 2));
  watchIdleErrors(submitPool, logger, target);
  return verified(pool, submitPool, "postgres", target, logger, async () => {
    await Promise.all([pool.end(), submitPool.end()]);
  });
}

/**
 * PGlite is an optional dependency, loaded only here: distributed nodes never pay
 * for its WebAssembly build, and the role images (`npm ci --omit=optional`) do not
 * ship it at all. A node without it that is asked for embedded storage says what
 * to do instead of failing with a bare module-resolution error.
 */
async function loadPglite() {
  try {
    const { PGlite } = await import("@electric-sql/pglite");
    return { PGlite };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if ((code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && String((err as Error).message).includes("@electric-sql/pglite")) {
      throw new ConfigError("DATABASE_URL", "embedded mode needs @electric-sql/pglite; install optional dependencies or set DATABASE_URL");
    }
    throw err;
  }
}

async function createPglitePool(dataDir: string, logger: StoreLogger): Promise<PoolHandle> {
  const inMemory = dataDir.startsWith("memory://");
  const dir = inMemory ? dataDir : path.resolve(dataDir);
  const target = inMemory ? "pglite memory://" : `pglite ${dir}`;
  const { PGlite } = await loadPglite();
  let lite: InstanceType<typeof PGlite>;
  try {
    if (!inMemory) fs.mkdirSync(dir, { recursive: true });
    lite = new PGlite(dir);
    await lite.waitReady;
  } catch (err) {
    throw connectError(err, target);
  }

  /**
   * A connection per client (pgliteConnection.ts): once pg-pool discards a client
   * (it does after any failed `pool.query`), its connection is ended, and a
   * connection shared between clients would fail the next one with "Connection
   * terminated".
   */
  class PgliteClient extends pg.Client {
    constructor() {
      super({ connection: new PgliteConnection(lite) } as unknown as pg.ClientConfig);
    }
  }

  const pool = new pg.Pool({
    Client: PgliteClient,
    max: 1,
    // Idle clients cost nothing here; recycling them would only run the reset below.
    idleTimeoutMillis: 0,
    /**
     * All clients share PGlite's one backend session. A client discarded inside
     * a transaction (`release(err)` without ROLLBACK) would, on Postgres, have
     * its transaction aborted with the socket; here it stays open and would
     * swallow every later write. So each new client starts from a clean session.
     */
    // pg-pool awaits the promise onConnect returns before handing the client out; its typings say void.
    // eslint-disable-next-line @typescript-eslint/no-misused-promises
    onConnect: async (client: pg.ClientBase): Promise<void> => {
      await client.query("ROLLBACK");
      await client.query("DISCARD ALL");
    },
  });
  return verified(pool, pool, "pglite", target, logger, async () => {
    await pool.end();
    await lite.close();
  });
}

/** The pool once one query went through: a store that cannot answer fails at start-up, closed, with a clear error. */
async function verified(pool: pg.Pool, submitPool: pg.Pool, kind: StoreKind, target: string, logger: StoreLogger, end: () => Promise<void>): Promise<PoolHandle> {
  watchIdleErrors(pool, logger, target);
  const close = once(end);
  try {
    await pool.query("SELECT 1");
  } catch (err) {
    await close().catch(() => undefined);
    throw connectError(err, target);
  }
  return { pool, submitPool, kind, target, close };
}
