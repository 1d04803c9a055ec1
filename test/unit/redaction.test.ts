/**
 * What leaves the process about its dependencies: a database outage's error (sent
 * to API clients as a 503) and the simulated-model banner name no credentials,
 * user, host or database.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { errorBody } from "../../src/errors";
import { openProvider } from "../../src/llm/provider";
import { redactUrl, scrubSecrets, secretForms } from "../../src/logging";
import { redactRedisUrl } from "../../src/redis/connection";
import { redactDatabaseUrl, toStoreError } from "../../src/store/dbErrors";

describe("redaction - a database outage as API clients see it", () => {
  const target = redactDatabaseUrl("postgres://clawfleet_app:s3cret-pass@db-primary.internal:5432/clawfleet_prod?sslmode=require");

  it.each([
    ["a refused connection", Object.assign(new Error("connect ECONNREFUSED 10.0.0.7:5432"), { code: "ECONNREFUSED" })],
    ["a dropped connection", new Error("Connection terminated unexpectedly")],
    ["a server restart", Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" })],
  ])("says the database is unavailable after %s, without user, host or database", (_what, cause) => {
    const err = toStoreError(cause, "createTask", target);
    const body = JSON.stringify(errorBody(err));
    expect(errorBody(err).error.type).toBe("unavailable");
    expect(errorBody(err).error.message).toMatch(/database unavailable/);
    for (const secret of ["clawfleet_app", "db-primary", "clawfleet_prod", "s3cret", "5432", "10.0.0.7"]) expect(body).not.toContain(secret);
  });
});

describe("redaction - URLs in log lines", () => {
  it("hides the user and password of any URL and keeps the rest", () => {
    expect(redactUrl("http://alice:hunter2@sim.internal:8080/v1")).toBe("http://***:***@sim.internal:8080/v1");
    expect(redactUrl("https://token@api.example.com/")).toBe("https://***@api.example.com/");
    expect(redactUrl("http://127.0.0.1:4010")).toBe("http://127.0.0.1:4010/");
    expect(redactUrl("not a url :// alice:hunter2")).not.toContain("hunter2");
  });

  it("keeps the Redis URL redaction as it was", () => {
    expect(redactRedisUrl("redis://default:hunter2@redis:6379/0")).toBe("redis://default:***@redis:6379/0");
    expect(redactRedisUrl("redis://bob:hunter2@redis:6379")).toBe("redis://***:***@redis:6379");
  });

  it("names the simulated model's address in the banner without its credentials", async () => {
    const lines: string[] = [];
    const logger = { warn: (obj: Record<string, unknown>, msg: string) => void lines.push(JSON.stringify(obj), msg) };
    const provider = await openProvider(
      { anthropicApiKey: undefined, anthropicBaseUrl: "http://alice:hunter2@sim.internal:8080", sim: { policies: undefined, latencyMs: 0, failureRate: 0 } } as never,
      logger,
    );
    await provider.close();
    expect(lines.join("\n")).toContain("sim.internal:8080");
    expect(lines.join("\n")).not.toMatch(/alice|hunter2/);
  });
});

describe("redaction - a secret anywhere in a log line", () => {
  const KEY = "sk-ant-api03-SCRUBTEST0123456789";
  const DB_PASSWORD = "pg/pass word+42";
  const env = {
    ANTHROPIC_API_KEY: KEY,
    CLAWFLEET_ADMIN_KEY: "admin-KEY-0123456789abcdefXYZ",
    DATABASE_URL: `postgres://app:${encodeURIComponent(DB_PASSWORD)}@db.internal:5432/app`,
    REDIS_URL: "redis://:redisPASSWORD99@redis:6379",
    TRANSPORTER: "nats://clawfleet:natsPASSWORD99@nats:4222",
    SERVICES: "api",
    LOG_LEVEL: "info",
  };

  it("scrubs the configured secrets from every line a node's logger writes, in any field or message", () => {
    // A real broker logger in a child process, writing to its real stdout: the destination the node uses.
    const script = `
      const { ServiceBroker } = require("moleculer");
      const { brokerOptions } = require("./moleculer.config");
      const { loadConfig } = require("./src/config");
      const broker = new ServiceBroker(brokerOptions(loadConfig()));
      const log = broker.getLogger("probe");
      log.error({ event: "probe", detail: "connect to ${env.DATABASE_URL} failed" }, "dependency said: bad key ${KEY}");
      log.info("a free-text line naming " + process.env.REDIS_URL + " and " + process.env.TRANSPORTER + " and " + process.env.CLAWFLEET_ADMIN_KEY);
      log.warn({ cause: new Error("password is ${DB_PASSWORD}") }, "decoded password in an error");
    `;
    const out = execFileSync(process.execPath, ["--import", "tsx", "-e", script], {
      cwd: path.resolve(__dirname, "../.."),
      env: { ...process.env, ...env, CLAWFLEET_LOG_FORMAT: "json" },
      encoding: "utf8",
    });
    const lines = out.split("\n").filter((l) => l.includes('"probe"') || l.includes("free-text") || l.includes("decoded password"));
    expect(lines).toHaveLength(3);
    for (const secret of [KEY, env.CLAWFLEET_ADMIN_KEY, DB_PASSWORD, encodeURIComponent(DB_PASSWORD), "redisPASSWORD99", "natsPASSWORD99"]) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain("[redacted]");
    expect(out).toContain("db.internal:5432");
  });

  it("replaces the longest form first and leaves short values alone", () => {
    expect(secretForms(["abc", "a/b c+d123"])).toEqual(["a%2Fb%20c%2Bd123", "a/b c+d123"]);
    expect(scrubSecrets("x a%2Fb%20c%2Bd123 y", secretForms(["a/b c+d123"]))).toBe("x [redacted] y");
  });
});
