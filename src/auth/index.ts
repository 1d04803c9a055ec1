/** REST API authentication: key format, verification with its cache, and key administration. */
export { issueKey, parseKey, KEY_PREFIX } from "./keys";
export { AUTH_CACHE_TTL_MS, KeyVerifier, requireOperatorTenant, requireScope, type Principal, type VerifierOptions } from "./verifier";
export { createKey, listKeys, managedTenant, revokeKey } from "./keyAdmin";
