/**
 * Where the example agents live, and the environment that makes a node serve
 * them as `npm start` does. Paths only: importing this loads no example code.
 */
import path from "node:path";

const ROOT = path.resolve(__dirname, "..");

export const ORDER_ROUTER_DIR = path.join(ROOT, "examples", "order-router");
export const ORDER_ROUTER_PROMPTS = path.join(ORDER_ROUTER_DIR, "prompts");
export const ORDER_ROUTER_SERVICES = path.join(ORDER_ROUTER_DIR, "services", "*.service.ts");
/** Its script for the simulated model (`clawfleet sim --policies`, CLAWFLEET_SIM_POLICIES). */
export const ORDER_ROUTER_SIM_POLICIES = path.join(ORDER_ROUTER_DIR, "sim", "policies.ts");
export const ORDER_ROUTER_MIGRATIONS = path.join(ORDER_ROUTER_DIR, "migrations");
/** The tool service's name: its migrations' history namespace. */
export const ORDER_ROUTER_SERVICE_NAME = "order-router-tools";

/**
 * What every test node gets before its own environment: the order-router example, its agent file, its tool
 * service (loaded by nodes with the `tools` role, in embedded mode every node) and its script for the sim.
 */
export const EXAMPLES_ENV: Readonly<Record<string, string>> = {
  CLAWFLEET_PROMPTS_DIR: ORDER_ROUTER_PROMPTS,
  CLAWFLEET_USER_SERVICES: ORDER_ROUTER_SERVICES,
  CLAWFLEET_SIM_POLICIES: ORDER_ROUTER_SIM_POLICIES,
};

/**
 * The examples import the package by its name, which resolves to the build (dist/) unless
 * examples/tsconfig.json maps it to the sources. A `clawfleet` process must find the same code it
 * runs: bin/clawfleet.js runs the sources when the build is stale (bin/entry.js), and then the
 * examples get the sources too, as under `npm start`. Asked per process, at its start.
 */
export function packageResolutionEnv(): Record<string, string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { useCompiled } = require("../bin/entry") as { useCompiled(this: void): boolean };
  return useCompiled() ? {} : { TSX_TSCONFIG_PATH: path.join(ROOT, "examples", "tsconfig.json") };
}

/** The roles of an executor process in test clusters: the executor, and the example's tool service beside it. */
export const EXECUTOR_ROLES = "executor,tools";
