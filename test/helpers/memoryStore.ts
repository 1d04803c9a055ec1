import { afterAll, beforeAll } from "vitest";
import { openStore, type OpenedStore, type PgTaskStore } from "../../src/store/pgTaskStore";

/**
 * A real store (PGlite in memory, migrated) opened once for the calling suite
 * and closed after it; `use` receives it before the first test runs.
 */
export function useMemoryStore(use: (store: PgTaskStore) => void): void {
  let opened: OpenedStore | undefined;
  beforeAll(async () => {
    opened = await openStore({ dataDir: "memory://" });
    use(opened.store);
  });
  afterAll(async () => {
    await opened?.close();
  });
}
