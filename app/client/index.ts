/**
 * The `clawfleet` commands that are clients of a running cluster's REST API
 * (`tasks`, `watch`, `agents`, `switches`, `approvals`, `keys`): finding the
 * command from its words, parsing its options, its help, and the one mapping
 * of what went wrong to stderr and an exit code (command.ts, `EXIT`).
 */
import fs from "node:fs/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { loadClientConfig, type ClientConfig } from "../../src/config";
import { ConfigError } from "../../src/errors";
import { EXIT, UsageError, type ClientIo, type Command, type OptionSpec, type OptionValues } from "./command";
import { ApiClient, ApiError, ConnectError, type Fetch } from "./http";
import { OPS_COMMANDS } from "./ops";
import { TASK_COMMANDS } from "./tasks";

export { EXIT } from "./command";

export const CLIENT_COMMANDS: readonly Command[] = [...TASK_COMMANDS, ...OPS_COMMANDS];

/** The first words of the client commands: what app/cli.ts hands to `runClient`. */
export const CLIENT_GROUPS: readonly string[] = [...new Set(CLIENT_COMMANDS.map((c) => c.name.split(" ")[0] ?? ""))];

/** Options every client command takes. */
const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  url: { type: "string", value: "url", help: "the REST API (default: CLAWFLEET_URL, else http://localhost:3000)" },
  key: { type: "string", value: "key", help: "the API key, sent as a bearer (default: CLAWFLEET_API_KEY)" },
  json: { type: "boolean", help: "print the API's JSON as it answered" },
  help: { type: "boolean", short: "h", help: "this help" },
};

/** Lines for the top-level usage of app/cli.ts: each group and what it does. */
export const CLIENT_USAGE = [
  "  tasks    submit, get, steps, ls, cancel, approve, redrive tasks (clawfleet tasks --help)",
  "  watch    follow a task until it ends; exit 0 succeeded, 1 failed, 2 cancelled",
  "  agents   agents, their versions and canaries (clawfleet agents --help)",
  "  switches kill switches: list, pause and resume (clawfleet switches --help)",
  "  queues   the wake-up queue's backlog and lag, open tasks, dead letters",
  "  limits   each model's rate limits, usage and headroom",
  "  approvals tasks waiting for an approval",
  "  keys     API keys: ls, create, revoke (clawfleet keys --help)",
].join("\n");

const CLIENT_NOTE = `These commands call a running cluster's REST API: CLAWFLEET_URL (default http://localhost:3000) and
CLAWFLEET_API_KEY, or --url and --key. Exit codes: 0 done, 1 the API answered an error, 2 a usage error,
3 no answer from the API (watch and tasks submit --wait: 0 succeeded, 1 failed, 2 cancelled).`;

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(options).map(([name, o]) => [`${o.short ? `-${o.short}, ` : ""}--${name}${o.value ? ` <${o.value}>` : ""}`, o.help] as const);
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, help]) => `  ${flag.padEnd(width)}  ${help}`);
}

export function commandHelp(cmd: Command): string {
  return [
    `usage: clawfleet ${cmd.name}${cmd.args ? ` ${cmd.args}` : ""} [options]`,
    "",
    `${cmd.summary[0]?.toUpperCase() ?? ""}${cmd.summary.slice(1)}.`,
    ...(cmd.details ? [cmd.details] : []),
    "",
    "options:",
    ...optionLines({ ...cmd.options, ...GLOBAL_OPTIONS }),
  ].join("\n");
}

/** Help for a group of commands (`clawfleet tasks`): each command's usage and summary. */
export function groupHelp(group: string): string {
  const cmds = CLIENT_COMMANDS.filter((c) => c.name === group || c.name.startsWith(`${group} `));
  const rows = cmds.map((c) => [`clawfleet ${c.name}${c.args ? ` ${c.args}` : ""}`, c.summary] as const);
  const width = Math.max(...rows.map(([u]) => u.length));
  return [
    `usage: clawfleet ${group} …`,
    "",
    ...rows.map(([u, s]) => `  ${u.padEnd(width)}  ${s}`),
    "",
    `Each takes --url, --key, --json and --help (clawfleet ${cmds[0]?.name ?? group} --help).`,
    "",
    CLIENT_NOTE,
  ].join("\n");
}

/** The command `argv` names (its longest match of words) and the arguments after its words; undefined when none matches. */
export function findCommand(argv: readonly string[]): { cmd: Command; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(" ");
    const cmd = CLIENT_COMMANDS.find((c) => c.name === name);
    if (cmd) return { cmd, rest: argv.slice(words) };
  }
  return undefined;
}

/** The options and positionals of `rest` for `cmd`; a usage error for an unknown option, a missing value or a wrong count. */
export function parseCommandLine(cmd: Command, rest: readonly string[]): { args: string[]; opt: OptionValues } {
  const options = Object.fromEntries(
    Object.entries({ ...cmd.options, ...GLOBAL_OPTIONS }).map(([name, o]) => [name, o.short ? { type: o.type, short: o.short } : { type: o.type }]),
  );
  let parsed: { values: OptionValues; positionals: string[] };
  try {
    const config: ParseArgsConfig = { args: [...rest], options, allowPositionals: true, strict: true };
    const r = parseArgs(config);
    // No option is `multiple`: every value is a string or a boolean.
    parsed = { values: r.values as OptionValues, positionals: r.positionals };
  } catch (err) {
    // parseArgs's own messages name the option and say what is wrong with it.
    throw new UsageError((err as Error).message.split("\n")[0] ?? "bad arguments");
  }
  if (parsed.values.help === true) return { args: parsed.positionals, opt: parsed.values };
  const [min, max] = cmd.arity;
  const n = parsed.positionals.length;
  if (n < min || n > max) {
    const want = min === max ? `${min}` : `${min} to ${max}`;
    throw new UsageError(`takes ${want} argument${max === 1 ? "" : "s"}${cmd.args ? ` (${cmd.args})` : ""}, got ${n}`);
  }
  return { args: parsed.positionals, opt: parsed.values };
}

export interface ClientEnv {
  config: ClientConfig;
  io: ClientIo;
  fetch?: Fetch;
}

/**
 * Runs a client command; answers the exit code. An API error, no answer and a usage error are reported on
 * stderr here; anything else is a bug, and is thrown.
 */
export async function runClient(argv: readonly string[], env: ClientEnv): Promise<number> {
  const { io } = env;
  const found = findCommand(argv);
  if (!found) {
    const group = argv[0] ?? "";
    const known = CLIENT_GROUPS.includes(group);
    const asked = argv.slice(1).some((a) => a === "--help" || a === "-h");
    if (known && (asked || argv.length === 1)) {
      if (asked) io.out(`${groupHelp(group)}\n`);
      else io.err(`${groupHelp(group)}\n`);
      return asked ? EXIT.ok : EXIT.usage;
    }
    io.err(`clawfleet: unknown command "${argv.slice(0, 2).join(" ")}"${known ? `\n\n${groupHelp(group)}` : ""}\n`);
    return EXIT.usage;
  }
  const { cmd, rest } = found;
  try {
    const { args, opt } = parseCommandLine(cmd, rest);
    if (opt.help === true) {
      // `clawfleet agents --help` is about every `agents …` command, not only the bare one.
      const group = CLIENT_COMMANDS.some((c) => c.name.startsWith(`${cmd.name} `));
      io.out(`${group ? groupHelp(cmd.name) : commandHelp(cmd)}\n`);
      return EXIT.ok;
    }
    const url = typeof opt.url === "string" ? opt.url : env.config.url;
    if (!/^https?:\/\/[^/]/.test(url)) throw new UsageError(`--url must be an http:// or https:// address, got "${url}"`);
    const apiKey = typeof opt.key === "string" ? opt.key : env.config.apiKey;
    const api = new ApiClient({ url, apiKey, ...(env.fetch ? { fetch: env.fetch } : {}) });
    return await cmd.run({ api, io, args, opt, json: opt.json === true });
  } catch (err) {
    return reportFailure(err, cmd, io);
  }
}

function reportFailure(err: unknown, cmd: Command, io: ClientIo): number {
  if (err instanceof ApiError) {
    io.err(`error: ${err.type}: ${err.message}\n`);
    return EXIT.apiError;
  }
  if (err instanceof ConnectError) {
    io.err(`error: ${err.message}\n`);
    return EXIT.cannotConnect;
  }
  if (err instanceof UsageError) {
    io.err(`clawfleet ${cmd.name}: ${err.message}\nusage: clawfleet ${cmd.name}${cmd.args ? ` ${cmd.args}` : ""} [options] (--help for more)\n`);
    return EXIT.usage;
  }
  throw err;
}

/** `clawfleet <client command>` in this process: its environment, its stdio; a bad CLAWFLEET_URL is a usage error. */
export async function runClientCommand(argv: readonly string[]): Promise<number> {
  const io = processIo();
  let config: ClientConfig;
  try {
    config = loadClientConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(`clawfleet: configuration error: ${err.message}\n`);
    return EXIT.usage;
  }
  return runClient(argv, { config, io });
}

/** The process's own I/O. */
export function processIo(): ClientIo {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    isTTY: process.stdout.isTTY === true,
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
      return Buffer.concat(chunks).toString("utf8");
    },
    readFile: (path) => fs.readFile(path, "utf8"),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
  };
}
