/** The store's public module: import from here, not from the files behind it. */
export type { ClaimResult, CreateTaskResult, DeadLetter, TaskOutcome, TaskStore } from "./types";
export { createPool, type PoolHandle, type PoolOptions, type StoreKind, type StoreLogger } from "./pool";
export { checksumOf, loadMigrations, migrate, migrationsDir, MigrationError, MIGRATION_LOCK_KEY, type Migration, type MigrateOptions, type MigrateReport } from "./migrate";
export { DuplicateStepError, openStore, PgTaskStore, type OpenedStore, type OpenStoreOptions, type PgTaskStoreOptions } from "./pgTaskStore";
export { isConnectivityError, redactDatabaseUrl } from "./dbErrors";
