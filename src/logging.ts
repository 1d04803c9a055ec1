/**
 * Log settings shared by Moleculer's logger and Clawfleet's own lines: pino JSON,
 * one line per event, and a redaction list so secrets never reach a log line,
 * even inside an error object.
 *
 * Every line carries `time`, `nodeID` (the worker), an `event` type (`log` for
 * lines that name none, such as Moleculer's own) and, inside a traced operation,
 * `trace_id` and `span_id`, so a line leads to its trace and back.
 */
import { isSpanContextValid, trace } from "@opentelemetry/api";
import type { LogLevel } from "./config";

/** The structured logger modules take (pino's shape; the broker's logger is one). Each takes the methods it uses. */
export interface Logger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

/** Paths pino blanks out wherever they occur (top level and one or two levels down). */
export const REDACT_PATHS = [
  "apiKey",
  "api_key",
  "authorization",
  "password",
  "headers.authorization",
  'headers["x-api-key"]',
  "*.apiKey",
  "*.api_key",
  "*.authorization",
  "*.password",
  '*["x-api-key"]',
  "*.headers.authorization",
  '*.headers["x-api-key"]',
];

export function pinoOptions(level: LogLevel): Record<string, unknown> {
  return {
    level,
    messageKey: "msg",
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    // The line's own fields win over these.
    mixin: logContext,
  };
}

/** Default event type and the active trace of a log line. */
export function logContext(): Record<string, string> {
  const sc = trace.getActiveSpan()?.spanContext();
  return sc !== undefined && isSpanContextValid(sc) ? { event: "log", trace_id: sc.traceId, span_id: sc.spanId } : { event: "log" };
}

/**
 * A URL for log lines and error messages: its user name and password replaced by `***` (a user name in
 * `keepUsers` is kept), the rest as given. An unparsable URL may still hold a secret, so `fallback` replaces it.
 */
export function redactUrl(url: string, opts: { keepUsers?: readonly string[]; fallback?: string } = {}): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    if (u.username !== "" && !(opts.keepUsers ?? []).includes(u.username)) u.username = "***";
    return u.toString();
  } catch {
    return opts.fallback ?? "<unparsable url>";
  }
}

/** Replaces any occurrence of the given secrets in a string. A last line of defence for free-text messages. */
export function scrubSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s !== undefined && s.length >= 8 && out.includes(s)) out = out.split(s).join("[redacted]");
  return out;
}

/**
 * Every form a secret can take in a JSON log line: as given, JSON-escaped, and
 * percent-encoded (a password inside a URL). Short values are left out: scrubbing
 * them would blank out ordinary words.
 */
export function secretForms(secrets: readonly (string | undefined)[]): string[] {
  const forms = new Set<string>();
  for (const s of secrets) {
    if (s === undefined || s.length < 8) continue;
    forms.add(s);
    forms.add(JSON.stringify(s).slice(1, -1));
    forms.add(encodeURIComponent(s));
  }
  // Longest first, so a form that contains another is replaced whole.
  return [...forms].sort((a, b) => b.length - a.length);
}

/** The secrets a URL carries: its password (as written in the URL and decoded). */
export function urlSecrets(url: string | undefined): string[] {
  if (url === undefined) return [];
  try {
    const { password } = new URL(url);
    return password === "" ? [] : [password, decodeURIComponent(password)];
  } catch {
    return [];
  }
}

/** The part of a destination the logger writes to. */
export interface LineSink {
  write(line: string): unknown;
}

/**
 * A log destination that scrubs the given secrets out of every line before it is
 * written: the redaction paths above catch known field names, this catches a secret
 * wherever else it shows up (an error message quoting a connection string, a
 * dependency's own log line, a stack).
 */
export function scrubbingSink(sink: LineSink, secrets: readonly (string | undefined)[]): LineSink {
  const forms = secretForms(secrets);
  if (forms.length === 0) return sink;
  return { write: (line: string) => sink.write(scrubSecrets(line, forms)) };
}
