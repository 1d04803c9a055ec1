import fs from "node:fs";
import path from "node:path";

let root: string | undefined;

/**
 * The folder holding Clawfleet's package.json (next to `bin/clawfleet.js`), whether running from `src/` (tsx),
 * `dist/src/` (compiled) or an installed package (`node_modules/clawfleet`): run-time files (SQL migrations,
 * Lua scripts) are read from its `src/`.
 */
export function projectRoot(): string {
  if (root !== undefined) return root;
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, "package.json")) && fs.existsSync(path.join(dir, "bin", "clawfleet.js"))) return (root = dir);
    const parent = path.dirname(dir);
    if (parent === dir) return (root = path.resolve(__dirname, ".."));
    dir = parent;
  }
}
