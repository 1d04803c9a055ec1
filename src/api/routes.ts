/**
 * The REST API's `/v1` routes, each with the scope a key needs for it. The
 * gateway's aliases are built from this table and every request is checked
 * against it, so a route cannot be added without saying who may call it.
 */
import type { Scope } from "../contracts";

export interface ApiRoute {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Below `/v1`, in moleculer-web's alias syntax. */
  path: string;
  /** The `api` service's action that answers. */
  action: string;
  scope: Scope;
  /**
   * The route changes what every tenant's tasks run (a switch, a canary), or shows figures of every tenant's
   * (the queues, the rate limits): only a key of the operator's tenant (`default`) may call it, whatever its
   * scopes. A tenant's `operate` key acts on its own tasks.
   */
  clusterWide?: true;
}

export const V1_ROUTES: readonly ApiRoute[] = [
  { method: "POST", path: "/tasks", action: "submitTask", scope: "submit" },
  { method: "GET", path: "/tasks", action: "listTasks", scope: "read" },
  { method: "GET", path: "/tasks/:id", action: "getTask", scope: "read" },
  { method: "GET", path: "/tasks/:id/steps", action: "getSteps", scope: "read" },
  { method: "GET", path: "/tasks/:id/events", action: "taskEvents", scope: "read" },
  { method: "GET", path: "/dead-letters", action: "deadLetters", scope: "read" },
  { method: "POST", path: "/tasks/:id/redrive", action: "redrive", scope: "operate" },
  { method: "POST", path: "/tasks/:id/cancel", action: "cancelTask", scope: "operate" },
  { method: "GET", path: "/approvals", action: "listApprovals", scope: "read" },
  { method: "POST", path: "/tasks/:id/approval", action: "decideApproval", scope: "operate" },
  { method: "GET", path: "/switches", action: "listSwitches", scope: "read" },
  { method: "PUT", path: "/switches/:kind/:name", action: "setSwitch", scope: "operate", clusterWide: true },
  { method: "GET", path: "/agents", action: "listAgents", scope: "read" },
  { method: "GET", path: "/agents/:name", action: "getAgent", scope: "read" },
  { method: "POST", path: "/agents/:name/canary", action: "startCanary", scope: "operate", clusterWide: true },
  { method: "DELETE", path: "/agents/:name/canary", action: "abortCanary", scope: "operate", clusterWide: true },
  { method: "GET", path: "/queues", action: "getQueues", scope: "read", clusterWide: true },
  { method: "GET", path: "/limits", action: "getLimits", scope: "read", clusterWide: true },
  { method: "POST", path: "/keys", action: "createKey", scope: "admin" },
  { method: "GET", path: "/keys", action: "listKeys", scope: "admin" },
  { method: "DELETE", path: "/keys/:id", action: "revokeKey", scope: "admin" },
];

export function v1Aliases(service: string): Record<string, string> {
  return Object.fromEntries(V1_ROUTES.map((r) => [`${r.method} ${r.path}`, `${service}.${r.action}`]));
}

const SCOPE_OF = new Map(V1_ROUTES.map((r) => [r.action, r.scope]));

/** The scope an action of the `api` service needs; undefined for one that is not a `/v1` route. */
export function scopeOf(action: string): Scope | undefined {
  return SCOPE_OF.get(action.slice(action.indexOf(".") + 1));
}

const CLUSTER_WIDE = new Set(V1_ROUTES.filter((r) => r.clusterWide).map((r) => r.action));

/** Whether an action of the `api` service is one only the operator's tenant may call (see `clusterWide`). */
export function isClusterWide(action: string): boolean {
  return CLUSTER_WIDE.has(action.slice(action.indexOf(".") + 1));
}
