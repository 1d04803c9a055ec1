/**
 * Turns what `pg` and PGlite throw into Clawfleet errors. Connectivity trouble
 * becomes `UnavailableError` (retryable); anything else becomes `InternalError`
 * with the SQLSTATE, never the SQL text or its parameters, because these errors
 * can travel to API clients. The original error stays on `cause` for local logs.
 */
import { ClawfleetError, InternalError, messageOf, UnavailableError } from "../errors";

/** Node socket errors that mean "the server could not be reached or went away". */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
]);

/**
 * SQLSTATEs worth retrying: the server is shutting down, starting, full or
 * out of resources, or the statement lost a race or ran out of time.
 */
const TRANSIENT_SQLSTATES = new Set([
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "57014", // query_canceled (statement_timeout)
  "53000", // insufficient_resources
  "53100", // disk_full
  "53200", // out_of_memory
  "53300", // too_many_connections
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "55P03", // lock_not_available
]);

/** Messages `pg`, `pg-pool` and PGlite use for a dead or unusable connection; they carry no code. */
const CONNECTION_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /connection error and is not queryable/i,
  /client was closed and is not queryable/i,
  /cannot use a pool after calling end/i,
  /pglite is closed/i,
];

function codeOf(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null || !("code" in err)) return undefined;
  const code = (err).code;
  return typeof code === "string" ? code : undefined;
}

/** True when retrying later (on another connection) can succeed. */
export function isConnectivityError(err: unknown): boolean {
  if (err instanceof AggregateError) return err.errors.some(isConnectivityError);
  const code = codeOf(err);
  return (code !== undefined && TRANSIENT_SQLSTATES.has(code)) || isConnectionLost(err);
}

/**
 * True when a statement's connection failed under it, so whether it committed is unknown (the answer may be
 * what was lost). An error the server answered for the statement itself (a timeout, a deadlock, a constraint)
 * means it was rolled back.
 */
export function isConnectionLost(err: unknown): boolean {
  if (err instanceof AggregateError) return err.errors.some(isConnectionLost);
  const code = codeOf(err);
  if (code !== undefined && (NETWORK_CODES.has(code) || code.startsWith("08") || /^57P0[123]$/.test(code))) return true;
  return CONNECTION_MESSAGES.some((re) => re.test(messageOf(err)));
}

/** SQLSTATE of a database error, if it is one. */
export function sqlStateOf(err: unknown): string | undefined {
  const code = codeOf(err);
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A short reason without server detail, for an `UnavailableError` message. */
function reasonOf(err: unknown): string {
  if (err instanceof AggregateError) {
    const inner = err.errors.map(reasonOf);
    return [...new Set(inner)].join(", ") || "unreachable";
  }
  const code = codeOf(err);
  if (code === "57014") return "statement timed out";
  if (code !== undefined && NETWORK_CODES.has(code)) return code;
  if (code !== undefined && TRANSIENT_SQLSTATES.has(code)) return `server busy or restarting (SQLSTATE ${code})`;
  const message = messageOf(err);
  // pg's own connection messages name no host, user or statement: safe to pass on.
  if (CONNECTION_MESSAGES.some((re) => re.test(message))) return message;
  return code !== undefined ? `SQLSTATE ${code}` : "connection failed";
}

function withCause<E extends ClawfleetError>(error: E, cause: unknown): E {
  (error as Error & { cause?: unknown }).cause = cause;
  return error;
}

/**
 * The error a store method throws for `err`. `target` is the redacted database
 * address (see `redactDatabaseUrl`), kept off the message and `data` that clients
 * see; `operation` names the store method.
 */
export function toStoreError(err: unknown, operation: string, target: string): Error {
  if (err instanceof ClawfleetError) return err;
  if (isConnectivityError(err)) {
    // This error reaches API clients (a 503): it names no user, host or database. `target` stays on the
    // error object itself, out of `message` and `data`, for a local log line.
    const unavailable = withCause(new UnavailableError(`database unavailable: ${reasonOf(err)}`, { operation, retryAfter: 1 }), err);
    Object.defineProperty(unavailable, "target", { value: target, enumerable: false });
    return unavailable;
  }
  const sqlState = sqlStateOf(err);
  return withCause(
    new InternalError(`database error in ${operation}${sqlState ? ` (SQLSTATE ${sqlState})` : ""}`, {
      operation,
      ...(sqlState ? { sqlState } : {}),
    }),
    err,
  );
}

/** The error for a failed connection attempt at start-up: names the host and the reason, never the password. */
export function connectError(err: unknown, target: string): UnavailableError {
  const code = codeOf(err);
  // Authentication and "database does not exist" messages name only the user or database: useful and safe.
  const detail = code === "28P01" || code === "28000" || code === "3D000" ? messageOf(err) : reasonOf(err);
  return withCause(new UnavailableError(`cannot connect to the database at ${target}: ${detail}`, { target }), err);
}

/**
 * `postgres://user@host:port/db` without password or query string (which may
 * hold `password=` or TLS key paths). Safe to log and to put in errors.
 */
export function redactDatabaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "postgres://<unparseable DATABASE_URL>";
  }
  const user = url.username ? `${url.username}@` : "";
  const host = url.host || "localhost";
  return `${url.protocol}//${user}${host}${url.pathname}`;
}
