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
}

export const V1_ROUTES: readonly ApiRoute[] = [
  { method: "POST", path: "/tasks", action: "submitTask", scope: "submit" },
  { method: "GET", path: "/tasks/:id", action: "getTask", scope: "read" },
  { method: "GET", path: "/tasks/:id/steps", action: "getSteps", scope: "read" },
  { method: "GET", path: "/dead-letters", action: "deadLetters", scope: "read" },
  { method: "POST", path: "/tasks/:id/redrive", action: "redrive", scope: "operate" },
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
