/**
 * Probes the real services once per run. Suites about Postgres, Redis or NATS
 * use `hasService()` to run or skip; when CI=true or CLAWFLEET_REQUIRE_SERVICES=1
 * a missing service fails the whole run instead of skipping quietly.
 */
import net from "node:net";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    services: { postgres: boolean; redis: boolean; nats: boolean };
  }
}

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port || defaultPort) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1500, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

export default async function setup(project: TestProject): Promise<void> {
  const pgUrl = process.env.CLAWFLEET_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const redisUrl = process.env.CLAWFLEET_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
  const natsUrl = process.env.CLAWFLEET_TEST_NATS_URL ?? "nats://127.0.0.1:4222";
  const services = {
    postgres: await reachable(pgUrl, 5432),
    redis: await reachable(redisUrl, 6379),
    nats: await reachable(natsUrl, 4222),
  };
  const missing = Object.entries(services)
    .filter(([, ok]) => !ok)
    .map(([name]) => name);
  const required = process.env.CI === "true" || process.env.CLAWFLEET_REQUIRE_SERVICES === "1";
  if (missing.length > 0) {
    const line = "!".repeat(78);
    const msg = [
      line,
      `!!  NOT REACHABLE: ${missing.join(", ")}`,
      `!!  (postgres ${pgUrl}, redis ${redisUrl}, nats ${natsUrl})`,
      required
        ? "!!  CI=true / CLAWFLEET_REQUIRE_SERVICES=1: real-service suites are required, failing the run."
        : "!!  The suites that need them are SKIPPED. Start the services to run them (see README).",
      line,
    ].join("\n");
    process.stderr.write(`\n${msg}\n\n`);
    if (required) throw new Error(`real services unreachable: ${missing.join(", ")}`);
  }
  project.provide("services", services);
}
