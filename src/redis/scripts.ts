/**
 * Loads a folder of Lua scripts into an ioredis connection: each file is named
 * `<command>-<number of keys>.lua`, or `<command>-n.lua` for a script that takes
 * any number of keys, and becomes a command run through EVALSHA
 * (ioredis falls back to EVAL after a Redis restart flushed the script cache).
 * Pieces shared by several scripts live in the folder's `includes/` and are
 * pulled in with `--- @include "includes/<name>"` (luaIncludes.ts).
 *
 * Scripts are read from `src/` even in the compiled build, which ships them
 * alongside `dist/`: tsc does not copy non-TypeScript files, and one location means
 * tsx and node run the very same text.
 */
import fs from "node:fs";
import path from "node:path";
import type { Redis } from "ioredis";
import { projectRoot } from "../paths";
import { resolveLuaIncludes } from "./luaIncludes";

export interface LuaScript {
  /** Command name: the file name without its key count, e.g. `releaseLease`. */
  readonly name: string;
  /** null: any number (a `-n.lua` file); `run` passes the count before the keys. */
  readonly numberOfKeys: number | null;
  readonly lua: string;
}

const FILE_NAME = /^([A-Za-z][A-Za-z0-9]*)-(\d+|n)\.lua$/;
const cache = new Map<string, readonly LuaScript[]>();
/** Scripts already defined per connection, so loading twice on a shared connection is harmless. */
const defined = new WeakMap<Redis, Map<string, string>>();

/** Absolute path of a script folder given relative to `src/`, e.g. `luaDir("lease", "lua")`. */
export function luaDir(...segments: string[]): string {
  return path.join(projectRoot(), "src", ...segments);
}

/**
 * Reads every `<name>-<keys>.lua` (or `<name>-n.lua`) in `dir` (once per process), its includes resolved.
 * A misnamed `.lua` file or a missing include is an error, not a silent skip.
 */
export function readScripts(dir: string): readonly LuaScript[] {
  const cached = cache.get(dir);
  if (cached) return cached;
  const scripts = fs
    .readdirSync(dir)
    .filter((file) => file.endsWith(".lua"))
    .sort()
    .map((file): LuaScript => {
      const match = FILE_NAME.exec(file);
      if (!match?.[1] || match[2] === undefined) {
        throw new Error(`${path.join(dir, file)}: Lua script files are named <command>-<number of keys>.lua, or <command>-n.lua`);
      }
      return { name: match[1], numberOfKeys: match[2] === "n" ? null : Number(match[2]), lua: resolveLuaIncludes(path.join(dir, file)) };
    });
  if (scripts.length === 0) throw new Error(`${dir}: no Lua scripts found`);
  cache.set(dir, scripts);
  return scripts;
}

type ScriptCommand = (...keysAndArgs: (string | number)[]) => Promise<unknown>;

/**
 * The scripts of one folder, defined on one connection. `run` checks the name and
 * the key count, so a typo fails loudly instead of sending keys as arguments.
 */
export class RedisScripts {
  private readonly byName: ReadonlyMap<string, LuaScript>;

  private constructor(
    private readonly redis: Redis,
    scripts: readonly LuaScript[],
  ) {
    this.byName = new Map(scripts.map((s) => [s.name, s]));
  }

  /** Defines every script of `dir` as a command on `redis`. */
  static load(redis: Redis, dir: string): RedisScripts {
    const scripts = readScripts(dir);
    let onConnection = defined.get(redis);
    if (!onConnection) defined.set(redis, (onConnection = new Map<string, string>()));
    for (const s of scripts) {
      const existing = onConnection.get(s.name);
      if (existing === s.lua) continue;
      if (existing !== undefined) throw new Error(`two different Lua scripts are named "${s.name}"`);
      // A script named like a built-in (say `get`) would shadow it on this connection.
      if (s.name in redis) throw new Error(`Lua script "${s.name}" collides with an ioredis method`);
      // Without a key count, ioredis takes it as the command's first argument (`run` passes it).
      redis.defineCommand(s.name, s.numberOfKeys === null ? { lua: s.lua } : { numberOfKeys: s.numberOfKeys, lua: s.lua });
      onConnection.set(s.name, s.lua);
    }
    return new RedisScripts(redis, scripts);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  run(name: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const script = this.byName.get(name);
    if (!script) throw new Error(`unknown Lua script "${name}" (loaded: ${this.names().join(", ")})`);
    if (script.numberOfKeys !== null && keys.length !== script.numberOfKeys) {
      throw new Error(`Lua script "${name}" takes ${script.numberOfKeys} key(s), got ${keys.length}`);
    }
    const command = (this.redis as unknown as Record<string, ScriptCommand>)[name];
    if (!command) throw new Error(`Lua script "${name}" is not defined on this connection`);
    return script.numberOfKeys === null ? command.call(this.redis, keys.length, ...keys, ...args) : command.call(this.redis, ...keys, ...args);
  }
}
