#!/usr/bin/env node
// Runs the compiled CLI when a build exists (images, installs); otherwise the TypeScript sources through tsx.
"use strict";
const path = require("node:path");
const fs = require("node:fs");
const compiled = path.join(__dirname, "..", "dist", "src", "cli.js");
if (fs.existsSync(compiled)) {
  require(compiled).run(process.argv.slice(2));
} else {
  require("tsx/cjs");
  require(path.join(__dirname, "..", "src", "cli.ts")).run(process.argv.slice(2));
}
