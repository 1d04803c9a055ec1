/**
 * The API key format, `cfk_<id>_<secret>`: the id (16 hex digits) finds the
 * stored row, the secret (32 random bytes, base64url) proves possession. Only
 * the secret's sha-256 is stored; comparisons run in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const KEY_PREFIX = "cfk_";

const KEY_PATTERN = /^cfk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface IssuedKey {
  id: string;
  /** The whole key, shown once to whoever asked for it. */
  key: string;
  /** Hex sha-256 of the secret: all that is stored. */
  secretHash: string;
}

export function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

export function issueKey(): IssuedKey {
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return { id, key: `${KEY_PREFIX}${id}_${secret}`, secretHash: sha256(secret).toString("hex") };
}

/** The id and secret of a well-formed key; undefined for anything else. */
export function parseKey(token: string): { id: string; secret: string } | undefined {
  const m = KEY_PATTERN.exec(token);
  return m?.[1] !== undefined && m[2] !== undefined ? { id: m[1], secret: m[2] } : undefined;
}

/** Whether `secret` hashes to `storedHashHex`, in time that does not depend on where they differ. */
export function secretMatches(secret: string, storedHashHex: string): boolean {
  const stored = Buffer.from(storedHashHex, "hex");
  const presented = sha256(secret);
  // A malformed stored hash still costs one comparison, against itself.
  return stored.length === presented.length ? timingSafeEqual(presented, stored) : !timingSafeEqual(presented, presented);
}
