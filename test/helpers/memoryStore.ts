import { afterAll, beforeAll, beforeEach } from "vitest";
import { NO_CAPS } from "../../src/store/fairClaim";
import { openStore, type OpenedStore, type PgTaskStore } from "../../src/store/pgTaskStore";

/**
 * A real store (PGlite in memory, migrated) opened once for the calling suite
 * and closed after it; `use` receives it before the first test runs.
 */
export function useMemoryStore(use: (store: PgTaskStore) => void, opts: { failQueuedBeforeEach?: boolean } = {}): void {
  let opened: OpenedStore | undefined;
  beforeAll(async () => {
    opened = await openStore({ dataDir: "memory://" });
    use(opened.store);
  });
  // A wake-up claims the fairest queued task, whichever it names: what an earlier test left queued would go first.
  if (opts.failQueuedBeforeEach) beforeEach(() => failQueued(opened?.store));
  afterAll(async () => {
    await opened?.close();
  });
}

/** Claims and fails every claimable queued task, so the next test's wake-ups find only its own. */
async function failQueued(store: PgTaskStore | undefined): Promise<void> {
  if (!store) return;
  for (let c = await store.claimNext("cleanup", NO_CAPS); c !== null; c = await store.claimNext("cleanup", NO_CAPS)) {
    await store.finishTask(c.task.id, c.fence, { status: "failed", error: { type: "test_cleanup", message: "left queued by an earlier test" } });
  }
}
