/**
 * The store over the broker, both ends: `RemoteTaskStore` turns each method
 * call into a call of the `checkpoint` service, which holds the database pool
 * for the roles without one, and `serveStoreCall` is that service's side. Both are built from the
 * store's method table (`src/contracts/store.ts`). Errors (a stale fence above
 * all) arrive as the same classes thanks to the error regenerator.
 */
import {
  parseCallParams,
  storeMethod,
  typedParams,
  STORE_METHOD_NAMES,
  type StoreArgs,
  type StoreMethod,
  type StoreMethodName,
  type StoreMethods,
  type StoreResult,
} from "../contracts";
import type { TaskStore } from "./types";

export type Caller = <T>(action: string, params: Record<string, unknown>) => Promise<T>;

/** Method `name` as a call of the action `${service}.${name}`; with `typed`, its params carry `typedParams`' mark. */
function remoteMethod<K extends StoreMethodName>(call: Caller, service: string, name: K, typed: boolean): StoreMethod<K> {
  const { toParams } = storeMethod(name);
  if (typed) return (...args: StoreArgs<K>) => call<StoreResult<K>>(`${service}.${name}`, typedParams({ ...toParams(...args) }));
  return (...args: StoreArgs<K>) => call<StoreResult<K>>(`${service}.${name}`, toParams(...args));
}

function remoteMethods(call: Caller, service: string, typed: ReadonlySet<StoreMethodName>): StoreMethods {
  const methods: Partial<Record<StoreMethodName, unknown>> = {};
  for (const name of STORE_METHOD_NAMES) methods[name] = remoteMethod(call, service, name, typed.has(name));
  // Complete: the loop went over every name of the table.
  return methods as StoreMethods;
}

// A class extends a constructor: this one's instances carry the table's methods.
const RemoteMethods = class {
  constructor(call: Caller, service: string, typed: ReadonlySet<StoreMethodName>) {
    Object.assign(this, remoteMethods(call, service, typed));
  }
} as new (call: Caller, service: string, typed: ReadonlySet<StoreMethodName>) => StoreMethods;

export class RemoteTaskStore extends RemoteMethods implements TaskStore {
  /**
   * `typed`: the methods whose params this caller builds only from values it validated before (the
   * planner's checkpoint writes). They carry `typedParams`' mark, so a checkpoint service on the same node
   * takes them as they are; every other call is validated there.
   */
  constructor(call: Caller, service = "checkpoint", typed: readonly StoreMethodName[] = []) {
    super(call, service, new Set(typed));
  }

  async migrate(): Promise<void> {
    // The checkpoint service migrates at its start.
  }

  async close(): Promise<void> {
    // Nothing held locally.
  }
}

/** The service's side of a call of method `name`: validates the params (`parseCallParams`), then calls the store with them. */
export function serveStoreCall<K extends StoreMethodName>(store: TaskStore, name: K, params: unknown, what: string): Promise<StoreResult<K>> {
  const { params: schema, toArgs } = storeMethod(name);
  const method: StoreMethods[K] = store[name];
  return method.apply(store, toArgs(parseCallParams(schema, params, what)));
}
