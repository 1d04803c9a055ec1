import fs from "node:fs";
import path from "node:path";

let root: string | undefined;

/** The folder holding Clawfleet's package.json, whether running from `src/` (tsx) or `dist/src/` (compiled). */
export function projectRoot(): string {
  if (root !== undefined) return root;
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, "package.json")) && fs.existsSync(path.join(dir, "prompts"))) return (root = dir);
    const parent = path.dirname(dir);
    if (parent === dir) return (root = path.resolve(__dirname, ".."));
    dir = parent;
  }
}
