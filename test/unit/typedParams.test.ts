/**
 * typed params - an action validates what it is sent, except params that Clawfleet's
 * own typed code built in the same process, where the schema would hand back an
 * equal copy: those go through as they are.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { Gateway, parseCallParams, typedParams, validatesAsIs } from "../../src/contracts";
import { ValidationError } from "../../src/errors";

const Plain = z.object({ id: z.string().min(1), n: z.number().int().nonnegative(), tags: z.array(z.string()).optional() });

describe("typed params", () => {
  it("tells the schemas that hand back what they accept from those that may change it", () => {
    expect(validatesAsIs(Plain)).toBe(true);
    expect(validatesAsIs(z.discriminatedUnion("k", [z.object({ k: z.literal("a"), v: z.unknown() }), z.object({ k: z.literal("b") })]))).toBe(true);
    expect(validatesAsIs(z.record(z.string(), z.union([z.string(), z.number().nullable()])))).toBe(true);
    type Json = string | Json[];
    const json: z.ZodType<Json> = z.lazy(() => z.union([z.string(), z.array(json)]));
    expect(validatesAsIs(json)).toBe(true);
    expect(validatesAsIs(Gateway.complete)).toBe(true);

    // Anywhere in the tree: a default, a coercion, a transform, a trim, a catch, a pipe.
    expect(validatesAsIs(z.object({ a: z.array(z.object({ b: z.number().default(1) })) }))).toBe(false);
    expect(validatesAsIs(z.object({ a: z.coerce.number() }))).toBe(false);
    expect(validatesAsIs(z.object({ a: z.string().transform((s) => s.length) }))).toBe(false);
    expect(validatesAsIs(z.object({ a: z.string().trim() }))).toBe(false);
    expect(validatesAsIs(z.object({ a: z.string().toLowerCase() }))).toBe(false);
    expect(validatesAsIs(z.object({ a: z.number().catch(0) }))).toBe(false);
    expect(validatesAsIs(z.object({ a: z.string().pipe(z.string()) }))).toBe(false);
    expect(validatesAsIs(z.object({ a: z.string() }).catchall(z.string().trim()))).toBe(false);
    expect(validatesAsIs(z.lazy(() => z.object({ a: z.number().default(0) })))).toBe(false);
    // Freezing, and checks that may write the value.
    expect(validatesAsIs(z.object({ a: z.string() }).readonly())).toBe(false);
    expect(validatesAsIs(z.object({ a: z.string().refine((v) => v.length > 0) }))).toBe(false);
    // A lazy that builds a new schema each time ends the walk (taken as changing), not the stack.
    const node = (): z.ZodType => z.object({ child: z.lazy(node).optional() });
    expect(validatesAsIs(node())).toBe(false);
  });

  it("typed params on the same node go through as they are, not copied", () => {
    const p = typedParams({ id: "x", n: 1, tags: ["a"] });
    expect(parseCallParams(Plain, p, "t")).toBe(p);
  });

  it("validates params nobody marked, and marked params whose schema may change them", () => {
    const p = { id: "x", n: 1 };
    expect(parseCallParams(Plain, p, "t")).not.toBe(p);
    expect(() => parseCallParams(Plain, { id: "", n: 1 }, "t")).toThrow(ValidationError);
    const WithDefault = z.object({ id: z.string(), n: z.number().default(7) });
    expect(parseCallParams(WithDefault, typedParams({ id: "x" }), "t")).toEqual({ id: "x", n: 7 });
  });

  it("the mark does not cross a serializer: what arrives from another node is validated", () => {
    const p = typedParams({ id: "x", n: -1 });
    expect(Object.keys(p)).toEqual(["id", "n"]);
    const arrived = JSON.parse(JSON.stringify(p)) as unknown;
    expect(() => parseCallParams(Plain, arrived, "t")).toThrow(/field "n"/);
    expect(() => parseCallParams(Plain, structuredClone(p), "t")).toThrow(/field "n"/);
  });

  it("a frozen object is left unmarked, so it is validated", () => {
    const p = typedParams(Object.freeze({ id: "x", n: 1 }));
    expect(parseCallParams(Plain, p, "t")).not.toBe(p);
  });
});
