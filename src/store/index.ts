/** The store's exports in one module, for callers that want all of it (the store contract suite); others import the file they need. */
export type { TaskStore } from "./types";
export { RemoteTaskStore, serveStoreCall, type Caller } from "./remoteStore";
export { createPool, type PoolHandle, type PoolOptions, type StoreKind, type StoreLogger } from "./pool";
export { checksumOf, loadMigrations, migrate, migrationsDir, MigrationError, MIGRATION_LOCK_KEY, type Migration, type MigrateOptions, type MigrateReport } from "./migrate";
export { DuplicateStepError, openStore, PgTaskStore, type OpenedStore, type OpenStoreOptions, type PgTaskStoreOptions } from "./pgTaskStore";
export { isConnectivityError, redactDatabaseUrl } from "./dbErrors";
