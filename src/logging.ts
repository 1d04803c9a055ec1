/**
 * Log settings shared by Moleculer's logger and Clawfleet's own lines: pino JSON,
 * one line per event, and a redaction list so secrets never reach a log line,
 * even inside an error object.
 */
import type { LogLevel } from "./config";

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
  };
}

/** Replaces any occurrence of the given secrets in a string. A last line of defence for free-text messages. */
export function scrubSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s !== undefined && s.length >= 8) out = out.split(s).join("[redacted]");
  return out;
}
