/**
 * `checkpoint`: the task database for the other roles (intake commits new tasks
 * itself, the executor its tool ledger). Every write that a worker
 * makes carries its fencing token; the store refuses stale ones. One action per
 * entry of the store's method table.
 */
import type { Context, ServiceSchema } from "moleculer";
import { STORE_METHOD_NAMES } from "../src/contracts";
import type { Resources } from "../src/node/resources";
import { serveStoreCall, type TaskStore } from "../src/store";

export function checkpointService(resources: Resources): ServiceSchema {
  let store: TaskStore | undefined;
  const db = (): TaskStore => {
    if (!store) throw new Error("checkpoint service is not started");
    return store;
  };
  const actions = Object.fromEntries(
    STORE_METHOD_NAMES.map((name) => [name, { handler: (ctx: Context) => serveStoreCall(db(), name, ctx.params, `checkpoint.${name}`) }]),
  );
  return {
    name: "checkpoint",
    actions,
    async started() {
      store = (await resources.database()).store;
      resources.health.register("checkpoint");
    },
    stopped() {
      resources.health.unregister("checkpoint");
    },
  };
}
