/**
 * The `clawfleet` command.
 *   clawfleet start          run the roles named by SERVICES (default: all, embedded)
 *   clawfleet sim --port N   run the simulated Anthropic-compatible model
 *   clawfleet repl           an interactive console on a running cluster (app/repl.ts)
 *   clawfleet tasks|watch|agents|switches|approvals|keys   clients of a cluster's REST API (app/client/)
 *   clawfleet plan           the capacity planner (app/client/plan.ts)
 */
import { loadConfig, loadReplConfig, loadSimConfig } from "../src/config";
import { ConfigError, messageOf } from "../src/errors";
import { CLIENT_GROUPS, CLIENT_USAGE, runClientCommand } from "./client";
import { runPlanCommand } from "./client/plan";
import type * as Repl from "./repl";
import type * as Sim from "../src/sim/cli";
import type * as Start from "./start";
import type { ClawfleetNode } from "./node";

/*
 * A node, the REPL and the sim each load a cluster's worth of modules (moleculer, the store, the SDK);
 * a client command needs none of them, so each is loaded only by the command that runs it. `require`,
 * not `import()`: the package is CommonJS, and it resolves the same from the sources and from dist/.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const launch: typeof Start.launch = (...args) => (require("./start") as typeof Start).launch(...args);
const startRepl: typeof Repl.startRepl = (...args) => (require("./repl") as typeof Repl).startRepl(...args);
const runSimCommand: typeof Sim.runSimCommand = (...args) => (require("../src/sim/cli") as typeof Sim).runSimCommand(...args);
/* eslint-enable @typescript-eslint/no-require-imports */

const USAGE = `usage: clawfleet <command>

commands:
  start    run a Clawfleet node (embedded by default; see README for the environment)
  sim      run the simulated Anthropic-compatible model (clawfleet sim --help)
  repl     join a running cluster (TRANSPORTER, CLAWFLEET_NAMESPACE) with an interactive console
  plan     the capacity a load needs: limits' headroom, processes, queueing, cost (clawfleet plan --help)
${CLIENT_USAGE}
  help     this text`;

async function start(): Promise<void> {
  const config = loadConfig();
  // The handlers go in before the node starts: a SIGTERM while it starts (a pod stopped at once, a rollout that
  // moves on) would otherwise end the process by the signal's default action, halfway through its start (a
  // planner may have claimed a task by then). Such a signal is kept, and the node stops gracefully once its start
  // is done, its drain planned within the grace period counted from the signal; the backstop runs from the signal
  // too, so a start that hangs cannot outlive it.
  const started: { node?: ClawfleetNode } = {};
  let signalWhileStarting: { signal: NodeJS.Signals; at: number } | undefined;
  let signals = 0;
  // Before the node exists there is no logger: a plain line on stderr, as a configuration error gets.
  const log = (level: "warn" | "error", fields: Record<string, unknown>, msg: string) => {
    if (started.node) started.node.broker.getLogger("cli")[level](fields, msg);
    else process.stderr.write(`clawfleet: ${msg}\n`);
  };
  const stop = (running: ClawfleetNode, signal: NodeJS.Signals, since: number) => {
    running
      .stop(`received ${signal}`, since)
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log("error", { event: "node.stop_failed", err: messageOf(err) }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log("warn", { event: "node.forced_exit", signal }, "second signal: exiting now");
      process.exit(130);
    }
    // The stop sequence is planned to end inside the grace period (src/agent/shutdown.ts); this is its backstop.
    const hardStop = setTimeout(() => {
      log("error", { event: "node.stop_timeout" }, "shutdown exceeded the grace period; exiting");
      process.exit(1);
    }, config.shutdownGraceMs);
    hardStop.unref();
    if (started.node) return stop(started.node, signal, Date.now());
    signalWhileStarting = { signal, at: Date.now() };
    process.stderr.write(`clawfleet: ${signal} while starting: the node stops once started (a second signal exits now)\n`);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const node = await launch(config);
  started.node = node;
  const logger = node.broker.getLogger("cli");
  if (signalWhileStarting !== undefined) {
    logger.info({ event: "node.signal_while_starting", signal: signalWhileStarting.signal }, "a stop signal came during start-up: stopping now");
    return stop(node, signalWhileStarting.signal, signalWhileStarting.at);
  }
  if (config.mode === "embedded") {
    const base = `http://localhost:${node.port}`;
    const agents = node.agents.list();
    const example = agents.find((a) => a.name === "order-router") ?? agents[0];
    const input = example?.name === "order-router" ? '{"order_id": "ORD-1042"}' : '"Hello"';
    process.stdout.write(
      [
        "",
        `Clawfleet is running (embedded mode: one process, data in ${config.dataDir}).`,
        ...(config.anthropicApiKey === undefined
          ? ["ANTHROPIC_API_KEY is not set: the built-in SIMULATED model answers (scripted per agent, no real LLM)."]
          : []),
        ...(config.auth.enabled ? [] : ["WARNING: the REST API is UNAUTHENTICATED (CLAWFLEET_AUTH=off): anyone who reaches this port can use it."]),
        `Agents: ${agents.map((a) => a.name).join(", ") || "none"}.`,
        "Submit a task:",
        `  curl -s -X POST ${base}/v1/tasks -H 'Content-Type: application/json' \\`,
        `       -d '{"agent": "${example?.name ?? "<agent>"}", "input": ${input}}'`,
        `Then: curl -s ${base}/v1/tasks/<id>   and   curl -s ${base}/v1/tasks/<id>/steps`,
        "",
      ].join("\n") + "\n",
    );
  } else {
    logger.info({ event: "node.started", roles: config.services, port: node.port }, "clawfleet node started");
  }
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case "start":
      return start();
    case "repl": {
      const session = await startRepl(loadReplConfig());
      await session.closed;
      process.exit(0);
      return;
    }
    case "plan":
      process.exitCode = await runPlanCommand(rest);
      return;
    case "sim":
      return runSimCommand(rest, { policies: loadSimConfig().policies });
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      if (CLIENT_GROUPS.includes(command)) {
        process.exitCode = await runClientCommand(argv);
        return;
      }
      process.stderr.write(`clawfleet: unknown command "${command}"\n\n${USAGE}\n`);
      process.exitCode = 2;
  }
}

/** Entry point: runs the command; a configuration error exits 78 (EX_CONFIG) with its message, anything else 1. */
export function run(argv: string[]): void {
  main(argv).catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`clawfleet: configuration error: ${err.message}\n`);
      process.exit(78);
    }
    process.stderr.write(`clawfleet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}

if (require.main === module) run(process.argv.slice(2));
