/**
 * `clawfleet repl`: an interactive console on a running cluster. A broker that
 * runs no role joins the cluster (TRANSPORTER, CLAWFLEET_NAMESPACE) and starts
 * moleculer-repl with Clawfleet's commands (app/replCommands.ts) beside its own
 * (`call`, `nodes`, `services`, `events`, …). Leaving the REPL (`quit`, Ctrl+D)
 * stops the broker; nothing else in the cluster notices.
 */
import os from "node:os";
import type { REPLServer } from "node:repl";
import { ServiceBroker } from "moleculer";
import REPL from "moleculer-repl";
import type { ReplConfig } from "../src/config";
import { ClawfleetRegenerator } from "../src/errors";
import { clawfleetCommands, type ReplOut } from "./replCommands";

export interface ReplSession {
  broker: ServiceBroker;
  server: REPLServer;
  /** Runs one line as if it were typed, and resolves once its command finished. */
  exec(line: string): Promise<void>;
  /** Resolves when the REPL is left. */
  closed: Promise<void>;
  /** Leaves the REPL and, if it created the broker, stops it. */
  close(): Promise<void>;
}

export interface ReplOptions {
  /** Where Clawfleet's commands print. @default process.stdout */
  out?: ReplOut;
  /** Attach to this broker (a node started in code) instead of joining the cluster with one of its own. */
  broker?: ServiceBroker;
}

/** A broker with no roles, on the cluster's transporter and namespace, speaking its serializer and error classes. */
export function replBroker(config: ReplConfig): ServiceBroker {
  return new ServiceBroker({
    namespace: config.namespace,
    nodeID: `repl-${os.hostname()}-${process.pid}`,
    transporter: config.transporter,
    serializer: "JSON",
    errorRegenerator: new ClawfleetRegenerator(),
    logger: { type: "Console", options: { level: config.logLevel, colors: process.stdout.isTTY, moduleColors: false } },
    logLevel: config.logLevel,
    requestTimeout: 30_000,
    metrics: { enabled: false },
    tracing: { enabled: false },
    skipProcessEventRegistration: true,
  });
}

/**
 * Starts the REPL on stdin/stdout. moleculer-repl keeps its commands in one module-wide program, so a
 * process starts one REPL at most.
 */
export async function startRepl(config: ReplConfig | undefined, opts: ReplOptions = {}): Promise<ReplSession> {
  const own = opts.broker === undefined;
  let broker: ServiceBroker;
  if (opts.broker) broker = opts.broker;
  else if (config) broker = replBroker(config);
  else throw new Error("startRepl needs the REPL's config or a broker to attach to");
  if (own) await broker.start();
  const customCommands = clawfleetCommands(config, opts.out) as unknown as Parameters<typeof REPL>[1]["customCommands"];
  const server = REPL(broker, { delimiter: "clawfleet $", customCommands });
  // moleculer-repl's own exit handler stops the broker and exits the process; the caller decides that here.
  server.removeAllListeners("exit");
  let closing: Promise<void> | undefined;
  const stop = () =>
    (closing ??= (async () => {
      if (own) await broker.stop();
    })());
  const closed = new Promise<void>((resolve) => server.once("exit", () => void stop().then(resolve, resolve)));
  return {
    broker,
    server,
    closed,
    exec: (line) =>
      new Promise<void>((resolve, reject) => {
        server.eval.call(server, line, server.context, "repl", (err: Error | null) => (err ? reject(err) : resolve()));
      }),
    close: async () => {
      server.close();
      await closed;
    },
  };
}
