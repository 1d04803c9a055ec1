/**
 * http errors - the one mapping of errors to HTTP answers (src/errors.ts httpStatusOf,
 * src/api/views.ts httpError): a failure of the way to a service (a node gone
 * mid-call, a NATS blip, a role not running) is a 503 with Retry-After; an error
 * nobody knows is a 500. test/e2e/apiIntakeGone.test.ts proves it over the broker.
 */
import { Errors } from "moleculer";
import { describe, expect, it } from "vitest";
import { httpError } from "../../src/api/views";
import { httpStatusOf, isTransportFailure, StaleFenceError, ValidationError } from "../../src/errors";

const at = { action: "intake.submit", nodeID: "intake-1" };
// Exported by Moleculer, missing from its type definitions.
const { BrokerDisconnectedError } = Errors as unknown as { BrokerDisconnectedError: new () => Error };
const transportFailures: Array<[string, Error]> = [
  ["RequestRejectedError", new Errors.RequestRejectedError(at)],
  ["RequestTimeoutError", new Errors.RequestTimeoutError(at)],
  ["RequestSkippedError", new Errors.RequestSkippedError(at)],
  ["ServiceNotAvailableError", new Errors.ServiceNotAvailableError(at)],
  ["ServiceNotFoundError", new Errors.ServiceNotFoundError(at)],
  ["BrokerDisconnectedError", new BrokerDisconnectedError()],
  ["QueueIsFullError", new Errors.QueueIsFullError({ ...at, size: 10, limit: 10 })],
];

describe("http errors - transport failures", () => {
  it.each(transportFailures)("mapping - %s is a 503 with Retry-After and an `unavailable` body naming no internals", (_name, err) => {
    expect(isTransportFailure(err)).toBe(true);
    expect(httpStatusOf(err)).toBe(503);
    const answer = httpError(err);
    expect(answer.status).toBe(503);
    expect(Number(answer.headers["Retry-After"])).toBeGreaterThanOrEqual(1);
    expect(answer.body.error.type).toBe("unavailable");
    expect(JSON.stringify(answer.body)).not.toContain("intake-1");
  });

  it("mapping - a circuit breaker open on the way is a 503", () => {
    const err = Object.assign(new Error("circuit breaker is open"), { name: "CircuitBreakerOpenError" });
    expect(httpError(err)).toMatchObject({ status: 503, headers: { "Retry-After": "5" } });
  });

  it("mapping - Clawfleet's own errors keep their status; an error nobody knows is a 500 without Retry-After", () => {
    expect(httpError(new ValidationError("bad", { field: "agent" })).status).toBe(422);
    expect(httpError(new StaleFenceError("stale")).status).toBe(409);
    const unknown = httpError(new TypeError("x is not a function"));
    expect(unknown).toMatchObject({ status: 500, body: { error: { type: "internal_error", message: "internal error" } } });
    expect(unknown.headers["Retry-After"]).toBeUndefined();
    expect(isTransportFailure(new Errors.MoleculerServerError("boom", 500, "X"))).toBe(false);
  });
});
