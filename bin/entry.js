// Which entry point `clawfleet` runs: the compiled CLI (dist/, what images and installs ship) or,
// in a source checkout whose build is missing or older than the sources, the TypeScript sources
// through tsx, so a stale build is never what runs. Shared by bin/clawfleet.js and the test drills.
"use strict";
const path = require("node:path");
const fs = require("node:fs");

const root = path.join(__dirname, "..");
const compiled = path.join(root, "dist", "app", "cli.js");
const source = path.join(root, "app", "cli.ts");
/** The folders tsc compiles into dist/ (tsconfig.build.json): an edit in any of them makes the build stale. */
const SOURCE_DIRS = ["app", "mixins", "services", "src"];

function newestSource(dir) {
  let newest = 0;
  if (!fs.existsSync(dir)) return newest;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (/\.(ts|sql|lua)$/.test(e.name)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** True when the compiled CLI in dist/ is the one to run. */
function useCompiled() {
  if (!fs.existsSync(compiled)) return false;
  if (!fs.existsSync(source)) return true; // an image or install: no sources to prefer
  const built = fs.statSync(compiled).mtimeMs;
  return built >= Math.max(...SOURCE_DIRS.map((d) => newestSource(path.join(root, d))));
}

module.exports = { compiled, source, useCompiled };
