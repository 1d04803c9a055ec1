/**
 * What a client command is (its words, arguments, options and help) and what
 * it runs with: the API client, the parsed arguments, and the process's I/O
 * behind an interface the unit tests replace.
 */
import type { ApiClient } from "./http";

/**
 * Exit codes. A command that follows a task (`watch`, `tasks submit --wait`) exits with the task's
 * outcome instead: 0 succeeded, 1 failed, 2 cancelled.
 */
export const EXIT = { ok: 0, apiError: 1, usage: 2, cannotConnect: 3 } as const;

/** A command line the command cannot run: wrong arguments, an unknown option, a file that cannot be read. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface ClientIo {
  out(text: string): void;
  err(text: string): void;
  /** Whether stdout is a terminal: `watch` draws a progress line there, and writes JSON lines anywhere else. */
  isTTY: boolean;
  readStdin(): Promise<string>;
  readFile(path: string): Promise<string>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** The value's name in the help (`--priority <p>`). */
  value?: string;
  help: string;
}

export type OptionValues = Record<string, string | boolean | undefined>;

export interface Invocation {
  api: ApiClient;
  io: ClientIo;
  /** The positional arguments after the command's words. */
  args: string[];
  opt: OptionValues;
  /** `--json`: print the API's JSON as it answered. */
  json: boolean;
}

export interface Command {
  /** Its words: `tasks submit`. */
  name: string;
  /** Its positional arguments, for the usage line: `<agent> <input-json|@file|->`. */
  args?: string;
  summary: string;
  /** More help, after the usage line. */
  details?: string;
  options?: Record<string, OptionSpec>;
  /** How many positional arguments it takes. */
  arity: readonly [min: number, max: number];
  run(c: Invocation): Promise<number>;
}

/** The option's value as a string, or undefined when it was not given. */
export const stringOpt = (opt: OptionValues, name: string): string | undefined => {
  const v = opt[name];
  return typeof v === "string" ? v : undefined;
};

/** `text` as JSON, for an option or argument that must be JSON; a usage error naming it otherwise. */
export function jsonArg(what: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** A positive integer option (`--limit 20`). */
export function positiveInt(what: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${what} must be a positive integer, got "${text}"`);
  return n;
}

/** Writes `text` as one line. */
export const line = (text: string): string => (text.endsWith("\n") ? text : `${text}\n`);
