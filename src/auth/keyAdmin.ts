/**
 * `POST /v1/keys`, `GET /v1/keys`, `DELETE /v1/keys/{id}` (scope `admin`).
 * An admin key of tenant `default` (the bootstrap key's) manages every
 * tenant's keys; an admin key of another tenant only its own tenant's, and
 * another tenant's key is a 404 to it like an unknown one.
 */
import { CreateKeySchema, DEFAULT_KEY_OVERLAP_S, DEFAULT_TENANT, parseParams, type ApiKeyInfo, type CreatedKey } from "../contracts";
import { ForbiddenError, KeyNotFoundError, ValidationError } from "../errors";
import type { TaskStore } from "../store/types";
import { issueKey } from "./keys";
import type { Principal } from "./verifier";

type KeyStore = Pick<TaskStore, "createKey" | "listKeys" | "revokeKey">;

/** The tenant whose keys `principal` manages; undefined: every tenant's. */
export function managedTenant(principal: Principal): string | undefined {
  return principal.tenant === DEFAULT_TENANT ? undefined : principal.tenant;
}

export async function createKey(store: KeyStore, principal: Principal, body: unknown): Promise<CreatedKey> {
  if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new ValidationError("the request body must be a JSON object", { field: "body" });
  }
  const req = parseParams(CreateKeySchema, body, "invalid key request");
  const scope = managedTenant(principal);
  if (scope !== undefined && req.tenant !== scope) {
    throw new ForbiddenError(`an admin key of tenant ${scope} manages only that tenant's keys`, { tenant: req.tenant });
  }
  const issued = issueKey();
  const info = await store.createKey(
    {
      id: issued.id,
      tenant: req.tenant,
      scopes: [...new Set(req.scopes)],
      secret_hash: issued.secretHash,
      ...(req.expires_in_seconds !== undefined ? { expires_in_seconds: req.expires_in_seconds } : {}),
    },
    req.replaces !== undefined ? { id: req.replaces, overlap_seconds: req.overlap_seconds ?? DEFAULT_KEY_OVERLAP_S } : undefined,
  );
  return { ...info, key: issued.key };
}

export function listKeys(store: KeyStore, principal: Principal): Promise<ApiKeyInfo[]> {
  return store.listKeys(managedTenant(principal));
}

export async function revokeKey(store: KeyStore, principal: Principal, id: string): Promise<ApiKeyInfo> {
  const revoked = await store.revokeKey(id, managedTenant(principal));
  if (revoked === null) throw new KeyNotFoundError(`no key ${JSON.stringify(id.slice(0, 64))}`, { id: id.slice(0, 64) });
  return revoked;
}
