/**
 * The two databases a store suite runs on: PGlite in memory, always, and a
 * Postgres database of its own, when Postgres is reachable (`ready` says so,
 * for `describe.skipIf`; test/globalSetup.ts prints the banner or, under CI,
 * fails the run).
 */
import { openStore, type OpenedStore, type OpenStoreOptions } from "../../src/store";
import { createTestDatabase, hasService } from "./services";

/** A store on a database of its own; `url` on Postgres, so that a node can open the same database. */
export type OpenedBackend = OpenedStore & { url?: string; dispose(): Promise<void> };

export interface StoreBackend {
  name: "pglite" | "postgres";
  /** False when the suite cannot run here: Postgres is not reachable. */
  ready: boolean;
  open(opts?: Pick<OpenStoreOptions, "migrate" | "logger">): Promise<OpenedBackend>;
}

/** `max`: the Postgres pool's size, room for the connections a suite races at once. */
export function storeBackends(opts: { max: number }): StoreBackend[] {
  return [
    {
      name: "pglite",
      ready: true,
      async open(over = {}) {
        const opened = await openStore({ dataDir: "memory://", ...over });
        return { ...opened, dispose: () => opened.close() };
      },
    },
    {
      name: "postgres",
      ready: hasService("postgres"),
      async open(over = {}) {
        const db = await createTestDatabase();
        try {
          const opened = await openStore({ databaseUrl: db.url, max: opts.max, ...over });
          return {
            ...opened,
            url: db.url,
            async dispose() {
              await opened.close();
              await db.drop();
            },
          };
        } catch (err) {
          await db.drop();
          throw err;
        }
      },
    },
  ];
}
