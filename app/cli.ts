/**
 * The `clawfleet` command.
 *   clawfleet start          run the roles named by SERVICES (default: all, embedded)
 *   clawfleet sim --port N   run the simulated Anthropic-compatible model
 */
import os from "node:os";
import { loadConfig } from "../src/config";
import { ConfigError, messageOf } from "../src/errors";
import { runSimCommand } from "../src/sim/cli";
import { startTracing } from "../src/telemetry/tracing";
import { startNode } from "./node";

const USAGE = `usage: clawfleet <command>

commands:
  start    run a Clawfleet node (embedded by default; see README for the environment)
  sim      run the simulated Anthropic-compatible model (clawfleet sim --help)
  help     this text`;

async function start(): Promise<void> {
  const config = loadConfig();
  // Before the broker and any service exist, so every span of this process has a provider to go to.
  const tracing = startTracing(config, config.nodeId ?? `${os.hostname()}-${process.pid}`);
  let node: Awaited<ReturnType<typeof startNode>>;
  try {
    node = await startNode(config);
  } catch (err) {
    await tracing.shutdown();
    throw err;
  }
  const logger = node.broker.getLogger("cli");
  tracing.useLogger(logger);
  if (config.mode === "embedded") {
    const base = `http://localhost:${node.port}`;
    process.stdout.write(
      [
        "",
        `Clawfleet is running (embedded mode: one process, data in ${config.dataDir}).`,
        ...(config.anthropicApiKey === undefined
          ? ["ANTHROPIC_API_KEY is not set: the built-in SIMULATED model answers (scripted per agent, no real LLM)."]
          : []),
        "Submit a task:",
        `  curl -s -X POST ${base}/v1/tasks -H 'Content-Type: application/json' \\`,
        `       -d '{"agent": "order-router", "input": {"order_id": "ORD-1042"}}'`,
        `Then: curl -s ${base}/v1/tasks/<id>   and   curl -s ${base}/v1/tasks/<id>/steps`,
        "",
      ].join("\n") + "\n",
    );
  } else {
    logger.info({ event: "node.started", roles: config.services, port: node.port }, "clawfleet node started");
  }
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      logger.warn({ event: "node.forced_exit", signal }, "second signal: exiting now");
      process.exit(130);
    }
    const hardStop = setTimeout(() => {
      logger.error({ event: "node.stop_timeout" }, "shutdown exceeded the grace period; exiting");
      process.exit(1);
    }, config.shutdownGraceMs + 5000);
    hardStop.unref();
    node
      .stop(`received ${signal}`)
      // After the node: the spans of its last steps are flushed too.
      .then(() => tracing.shutdown())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ event: "node.stop_failed", err: messageOf(err) }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case "start":
      return start();
    case "sim":
      return runSimCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
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
