/**
 * Tenants, scopes and API keys: what the store keeps of a key (never the
 * secret, only its sha-256), what the REST API accepts and answers for keys.
 * A key is `cfk_<id>_<secret>`; the id finds the row, the secret proves it.
 */
import { z } from "zod";
import { TimestampSchema } from "./task";

/**
 * What a key may do: `submit` tasks, `read` tasks, steps and dead letters,
 * `operate` (redrive, and the operator's controls), `admin` (keys).
 */
export const SCOPES = ["submit", "read", "operate", "admin"] as const;
export const ScopeSchema = z.enum(SCOPES);
export type Scope = z.infer<typeof ScopeSchema>;

/** Every caller's tenant while authentication is off, and the tenant of rows from before tenants existed. */
export const DEFAULT_TENANT = "default";

export const TenantSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "a tenant is letters, digits, '.', '_' and '-', starting with a letter or digit");

/** A key id as issued: 16 hex digits. */
export const KeyIdSchema = z.string().regex(/^[0-9a-f]{16}$/, "a key id is 16 hex digits");
/** A key id as a caller names it: anything short; one that is not an id names no key. */
export const KeyRefSchema = z.string().min(1).max(64);

/** Hex sha-256 of a key's secret. */
export const SecretHashSchema = z.string().regex(/^[0-9a-f]{64}$/, "a sha-256 in hex");

/** A key as listed: everything but its secret. */
export const ApiKeyInfoSchema = z.object({
  id: KeyIdSchema,
  tenant: TenantSchema,
  scopes: z.array(ScopeSchema),
  created_at: TimestampSchema,
  /** Null: no expiry. A key replaced by a rotation expires when its overlap ends. */
  expires_at: TimestampSchema.nullable(),
  revoked_at: TimestampSchema.nullable(),
});
export type ApiKeyInfo = z.infer<typeof ApiKeyInfoSchema>;

/** A key as verification reads it: with the hash its secret must match. Never leaves the cluster. */
export const ApiKeyRecordSchema = ApiKeyInfoSchema.extend({ secret_hash: SecretHashSchema });
export type ApiKeyRecord = z.infer<typeof ApiKeyRecordSchema>;

const MAX_EXPIRY_S = 10 * 365 * 24 * 3600;
const MAX_OVERLAP_S = 30 * 24 * 3600;

/** A key as the store creates it. */
export const NewApiKeySchema = z.object({
  id: KeyIdSchema,
  tenant: TenantSchema,
  scopes: z.array(ScopeSchema).min(1),
  secret_hash: SecretHashSchema,
  expires_in_seconds: z.number().int().positive().max(MAX_EXPIRY_S).optional(),
});
export type NewApiKey = z.infer<typeof NewApiKeySchema>;

/** The key a new one replaces (same tenant): it stays valid `overlap_seconds` more, then expires. */
export const KeyReplacementSchema = z.object({ id: KeyRefSchema, overlap_seconds: z.number().int().nonnegative().max(MAX_OVERLAP_S) });
export type KeyReplacement = z.infer<typeof KeyReplacementSchema>;

/** How long a replaced key keeps working when the request names no overlap. */
export const DEFAULT_KEY_OVERLAP_S = 24 * 3600;

/** Body of `POST /v1/keys`. */
export const CreateKeySchema = z
  .object({
    tenant: TenantSchema,
    scopes: z.array(ScopeSchema).min(1).max(SCOPES.length),
    expires_in_seconds: z.number().int().positive().max(MAX_EXPIRY_S).optional(),
    /** Rotation: the id of the key this one replaces. */
    replaces: KeyRefSchema.optional(),
    /** How long the replaced key keeps working. @default 86400 */
    overlap_seconds: z.number().int().nonnegative().max(MAX_OVERLAP_S).optional(),
  })
  .strict();
export type CreateKey = z.infer<typeof CreateKeySchema>;

/** The 201 answer to `POST /v1/keys`: the only time the key itself is shown. */
export const CreatedKeySchema = ApiKeyInfoSchema.extend({ key: z.string() });
export type CreatedKey = z.infer<typeof CreatedKeySchema>;
