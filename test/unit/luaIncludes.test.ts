/**
 * lua includes - `--- @include "<name>"` in a Lua script file is replaced by the
 * named file at load time: relative to the including file, nested, each file
 * once per script, and a missing or circular include fails when the scripts are
 * read (start-up), not at the first EVALSHA.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveLuaIncludes } from "../../src/redis/luaIncludes";
import type { Redis } from "ioredis";
import { luaDir, readScripts, RedisScripts } from "../../src/redis/scripts";

let dir: string;

function write(files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
}

const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "");

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-lua-"));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("lua includes - resolution", () => {
  it("replaces an include line with the file it names, relative to the including file", () => {
    write({
      "run-1.lua": '--- @include "includes/double"\nreturn double(ARGV[1])\n',
      "includes/double.lua": "local function double(x) return 2 * x end\n",
    });
    expect(lines(resolveLuaIncludes(path.join(dir, "run-1.lua")))).toEqual(["local function double(x) return 2 * x end", "return double(ARGV[1])"]);
  });

  it("resolves nested includes, each relative to the file that asks for it", () => {
    write({
      "run-1.lua": '--- @include "includes/outer"\nreturn outer()\n',
      "includes/outer.lua": '--- @include "inner"\nlocal function outer() return inner() end\n',
      "includes/inner.lua": "local function inner() return 1 end\n",
    });
    expect(lines(resolveLuaIncludes(path.join(dir, "run-1.lua")))).toEqual([
      "local function inner() return 1 end",
      "local function outer() return inner() end",
      "return outer()",
    ]);
  });

  it("puts a file in a script once however many files include it", () => {
    write({
      "run-1.lua": '--- @include "includes/a"\n--- @include "includes/b"\n--- @include "includes/shared.lua"\nreturn 1\n',
      "includes/a.lua": '--- @include "shared"\nlocal a = 1\n',
      "includes/b.lua": '--- @include "shared"\nlocal b = 2\n',
      "includes/shared.lua": "local shared = 0\n",
    });
    const text = resolveLuaIncludes(path.join(dir, "run-1.lua"));
    expect(lines(text)).toEqual(["local shared = 0", "local a = 1", "local b = 2", "return 1"]);
    expect(text).not.toContain("@include");
  });

  it("leaves a script without includes as it is", () => {
    const text = "-- a comment\nreturn redis.call('GET', KEYS[1])\n";
    write({ "get-1.lua": text });
    expect(resolveLuaIncludes(path.join(dir, "get-1.lua"))).toBe(text);
  });
});

describe("lua includes - errors at load time", () => {
  it("names the script, the line and the missing file", () => {
    write({ "run-1.lua": 'return 1\n--- @include "includes/nowhere"\n' });
    expect(() => resolveLuaIncludes(path.join(dir, "run-1.lua"))).toThrow(/run-1\.lua:2: --- @include "includes\/nowhere": .*includes\/nowhere\.lua does not exist/);
  });

  it("fails a missing include when the folder's scripts are read", () => {
    write({ "ok-1.lua": "return 1\n", "broken-1.lua": '--- @include "includes/gone"\nreturn 2\n' });
    expect(() => readScripts(dir)).toThrow(/broken-1\.lua:1: --- @include "includes\/gone"/);
  });

  it("refuses a cycle of includes", () => {
    write({
      "run-1.lua": '--- @include "includes/a"\nreturn 1\n',
      "includes/a.lua": '--- @include "b"\n',
      "includes/b.lua": '--- @include "a"\n',
    });
    expect(() => resolveLuaIncludes(path.join(dir, "run-1.lua"))).toThrow(/circular --- @include: a\.lua -> b\.lua -> a\.lua/);
  });

  it("refuses an include line it cannot read", () => {
    write({ "run-1.lua": "--- @include includes/a\nreturn 1\n" });
    expect(() => resolveLuaIncludes(path.join(dir, "run-1.lua"))).toThrow(/run-1\.lua:1: an include is written --- @include "<name>"/);
  });
});

describe("lua includes - the shipped scripts", () => {
  it("resolve every include of the rate-limit and lease scripts, the refill written once in each", () => {
    const rate = readScripts(luaDir("ratelimit", "lua"));
    expect(rate.map((s) => s.name)).toEqual(["addUsage", "penalizeRate", "readUsage", "reserveRate", "settleRate"]);
    for (const s of [...rate, ...readScripts(luaDir("lease", "lua"))]) expect(s.lua, s.name).not.toContain("@include");
    // The scripts that move the buckets refill them, each with the one refill; the usage window's own scripts do not.
    const buckets = rate.filter((s) => ["penalizeRate", "reserveRate", "settleRate"].includes(s.name));
    expect(buckets).toHaveLength(3);
    for (const s of buckets) expect(s.lua.match(/local function refill\(/g), s.name).toHaveLength(1);
  });
});

describe("lua scripts - a script of any number of keys (`<name>-n.lua`)", () => {
  it("is read with no fixed key count, and run with the count of the keys given before them", async () => {
    write({ "fixed-2.lua": "return KEYS\n", "many-n.lua": "return KEYS\n" });
    const scripts = readScripts(dir);
    expect(scripts.map((s) => [s.name, s.numberOfKeys])).toEqual([
      ["fixed", 2],
      ["many", null],
    ]);
    expect(readScripts(luaDir("lease", "lua")).find((s) => s.name === "renewLeases")?.numberOfKeys).toBeNull();

    // A connection that records how ioredis would be asked to define and run each command.
    const defined = new Map<string, { numberOfKeys?: number }>();
    const ran: Array<[string, unknown[]]> = [];
    const connection = {
      defineCommand(name: string, opts: { numberOfKeys?: number; lua: string }) {
        defined.set(name, opts.numberOfKeys === undefined ? {} : { numberOfKeys: opts.numberOfKeys });
        (this as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => Promise.resolve(ran.push([name, args]));
      },
    };
    const loaded = RedisScripts.load(connection as unknown as Redis, dir);
    expect(Object.fromEntries(defined)).toEqual({ fixed: { numberOfKeys: 2 }, many: {} });

    await loaded.run("many", ["k1", "k2", "k3"], [60_000, "a"]);
    await loaded.run("many", [], [1]);
    await loaded.run("fixed", ["k1", "k2"], ["x"]);
    expect(ran).toEqual([
      ["many", [3, "k1", "k2", "k3", 60_000, "a"]],
      ["many", [0, 1]],
      ["fixed", ["k1", "k2", "x"]],
    ]);
    expect(() => loaded.run("fixed", ["k1"], [])).toThrow(/takes 2 key\(s\), got 1/);
  });

  it("a file named with neither a count nor n is refused when the scripts are read", () => {
    write({ "odd-x.lua": "return 1\n" });
    expect(() => readScripts(dir)).toThrow(/odd-x\.lua: Lua script files are named <command>-<number of keys>\.lua, or <command>-n\.lua/);
  });
});
