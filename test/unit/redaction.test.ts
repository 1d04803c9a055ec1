/**
 * What leaves the process about its dependencies: a database outage's error (sent
 * to API clients as a 503) and the simulated-model banner name no credentials,
 * user, host or database.
 */
import { describe, expect, it } from "vitest";
import { errorBody } from "../../src/errors";
import { openProvider } from "../../src/llm/provider";
import { redactUrl } from "../../src/logging";
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
