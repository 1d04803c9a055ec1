/**
 * The `api_keys` table (migration 005) for `PgTaskStore`. A key's secret is
 * never here: only its sha-256 (bytea), handed out in hex for verification by
 * the api role, which compares it in constant time.
 */
import type pg from "pg";
import type { ApiKeyInfo, ApiKeyRecord, KeyReplacement, NewApiKey, Scope } from "../contracts";
import { SCOPES } from "../contracts";
import { KeyNotFoundError } from "../errors";
import { iso, isoOrNull } from "./rows";

export interface ApiKeyRow {
  id: string;
  tenant: string;
  scopes: string[];
  secret_hash?: Buffer;
  created_at: Date | string;
  expires_at: Date | string | null;
  revoked_at: Date | string | null;
}

type Query = (text: string, values: unknown[]) => Promise<pg.QueryResult<ApiKeyRow>>;

const INFO = "id, tenant, scopes, created_at, expires_at, revoked_at";

const SQL = {
  // A rotation shortens the old key's life to the overlap, never lengthens it; a dead key cannot be replaced.
  expireReplaced: `
    UPDATE api_keys
    SET expires_at = LEAST(COALESCE(expires_at, 'infinity'::timestamptz), now() + $3::integer * interval '1 second')
    WHERE id = $1 AND tenant = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
    RETURNING id`,
  insert: `
    INSERT INTO api_keys (id, tenant, scopes, secret_hash, expires_at)
    VALUES ($1, $2, $3::text[], decode($4, 'hex'), CASE WHEN $5::integer IS NULL THEN NULL ELSE now() + $5::integer * interval '1 second' END)
    RETURNING ${INFO}`,
  find: `SELECT ${INFO}, secret_hash FROM api_keys WHERE id = $1`,
  list: `SELECT ${INFO} FROM api_keys WHERE ($1::text IS NULL OR tenant = $1) ORDER BY created_at, id`,
  revoke: `
    UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
    WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
    RETURNING ${INFO}`,
} as const;

const scopesOf = (v: readonly string[]): Scope[] => SCOPES.filter((s) => v.includes(s));

export function toKeyInfo(row: ApiKeyRow): ApiKeyInfo {
  return {
    id: row.id,
    tenant: row.tenant,
    scopes: scopesOf(row.scopes),
    created_at: iso(row.created_at),
    expires_at: isoOrNull(row.expires_at),
    revoked_at: isoOrNull(row.revoked_at),
  };
}

/** A key id as issued is 16 hex digits; anything else names no key (and must not reach the SQL as one). */
const isKeyId = (id: string) => /^[0-9a-f]{16}$/.test(id);

export async function createApiKey(client: pg.PoolClient, key: NewApiKey, replaces?: KeyReplacement): Promise<ApiKeyInfo> {
  if (replaces !== undefined) {
    const expired = isKeyId(replaces.id) ? await client.query(SQL.expireReplaced, [replaces.id, key.tenant, replaces.overlap_seconds]) : { rowCount: 0 };
    if (expired.rowCount !== 1) throw new KeyNotFoundError(`no valid key ${replaces.id.slice(0, 64)} of tenant ${key.tenant} to replace`, { id: replaces.id.slice(0, 64) });
  }
  const { rows } = await client.query<ApiKeyRow>(SQL.insert, [key.id, key.tenant, key.scopes, key.secret_hash, key.expires_in_seconds ?? null]);
  const row = rows[0];
  if (row === undefined) throw new KeyNotFoundError("the new key was not stored", { id: key.id });
  return toKeyInfo(row);
}

export async function findApiKey(query: Query, id: string): Promise<ApiKeyRecord | null> {
  if (!isKeyId(id)) return null;
  const row = (await query(SQL.find, [id])).rows[0];
  if (row?.secret_hash === undefined) return null;
  return { ...toKeyInfo(row), secret_hash: row.secret_hash.toString("hex") };
}

export async function listApiKeys(query: Query, tenant?: string): Promise<ApiKeyInfo[]> {
  return (await query(SQL.list, [tenant ?? null])).rows.map(toKeyInfo);
}

export async function revokeApiKey(query: Query, id: string, tenant?: string): Promise<ApiKeyInfo | null> {
  if (!isKeyId(id)) return null;
  const row = (await query(SQL.revoke, [id, tenant ?? null])).rows[0];
  return row === undefined ? null : toKeyInfo(row);
}
