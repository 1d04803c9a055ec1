/**
 * What a Clawfleet node lends the user services that run in its broker: the
 * node's database (PGlite embedded, Postgres distributed). The node sets the
 * handle on its broker under a symbol from the global registry, so a user's
 * service that loaded another copy of the package finds it all the same; the
 * `ClawfleetTools` mixin reads it (`this.clawfleet.database()`).
 */
import type pg from "pg";
import { ConfigError } from "../errors";

export interface ClawfleetNodeHandle {
  readonly mode: "embedded" | "distributed";
  /** The node's pg-compatible pool, opened (and Clawfleet's schema migrated) on first use. Do not end it. */
  database(): Promise<pg.Pool>;
}

const NODE_HANDLE = Symbol.for("clawfleet.node");

type WithHandle = { [NODE_HANDLE]?: ClawfleetNodeHandle };

/** Lends `handle` to the services of `broker`; the first handle set stays (one node per broker). */
export function attachNodeHandle(broker: object, handle: ClawfleetNodeHandle): void {
  const b = broker as WithHandle;
  if (b[NODE_HANDLE] === undefined) Object.defineProperty(b, NODE_HANDLE, { value: handle, enumerable: false });
}

export function nodeHandleOf(broker: object): ClawfleetNodeHandle | undefined {
  return (broker as WithHandle)[NODE_HANDLE];
}

/** The handle of the node running `broker`; outside a Clawfleet node, a ConfigError saying what to do instead. */
export function requireNodeHandle(broker: object, who: string): ClawfleetNodeHandle {
  const handle = nodeHandleOf(broker);
  if (handle) return handle;
  throw new ConfigError(
    who,
    "the node's database is only lent to services run by a Clawfleet node (`clawfleet start`, embedded or with SERVICES=tools); " +
      "a service in a broker of its own opens its own pg.Pool instead",
  );
}

/** What a node holds that the handle lends (src/node/resources.ts). */
export interface NodeResourcesLike {
  readonly config: { readonly mode: "embedded" | "distributed" };
  database(): Promise<{ pool: pg.Pool }>;
}

/** Lends the node's database to the user services of `broker`: called by whatever builds a node's broker. */
export function lendNodeResources(broker: object, resources: NodeResourcesLike): void {
  attachNodeHandle(broker, { mode: resources.config.mode, database: async () => (await resources.database()).pool });
}
