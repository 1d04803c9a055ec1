/**
 * Shared pieces of Lua, written once: a line `--- @include "<name>"` in a script
 * is replaced by the file `<name>.lua`, found relative to the including file
 * (scripts say `--- @include "includes/refill"`, an include beside them says
 * `--- @include "other"`).
 *
 * Includes nest; each file goes into a script at most once however many files
 * ask for it (an include defines `local function`s, and a second copy would only
 * shadow the first). A missing include or a cycle of includes is an error when
 * the scripts are read, which is at start-up.
 */
import fs from "node:fs";
import path from "node:path";

const DIRECTIVE = /^\s*---\s*@include\b/;
const INCLUDE = /^\s*---\s*@include\s+"([^"]+)"\s*$/;

/** The text of the script at `file` with every `--- @include` replaced by the file it names. */
export function resolveLuaIncludes(file: string): string {
  return expand(path.resolve(file), new Set<string>(), []);
}

function expand(file: string, included: Set<string>, chain: readonly string[]): string {
  const lines = fs.readFileSync(file, "utf8").split("\n");
  const inChain = [...chain, file];
  return lines
    .map((line, i) => {
      if (!DIRECTIVE.test(line)) return line;
      const where = `${file}:${i + 1}`;
      const name = INCLUDE.exec(line)?.[1];
      if (name === undefined) throw new Error(`${where}: an include is written --- @include "<name>", got: ${line.trim()}`);
      const target = path.resolve(path.dirname(file), name.endsWith(".lua") ? name : `${name}.lua`);
      if (inChain.includes(target)) {
        const cycle = [...inChain.slice(inChain.indexOf(target)), target].map((f) => path.basename(f)).join(" -> ");
        throw new Error(`${where}: circular --- @include: ${cycle}`);
      }
      if (included.has(target)) return "";
      if (!fs.existsSync(target)) throw new Error(`${where}: --- @include "${name}": ${target} does not exist`);
      included.add(target);
      return expand(target, included, inChain).replace(/\n$/, "");
    })
    .join("\n");
}
