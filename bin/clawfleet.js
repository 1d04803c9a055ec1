#!/usr/bin/env node
// The `clawfleet` command: the compiled CLI, or the sources through tsx when the build is stale (bin/entry.js).
"use strict";
const { compiled, source, useCompiled } = require("./entry");

if (useCompiled()) {
  require(compiled).run(process.argv.slice(2));
} else {
  require("tsx/cjs");
  require(source).run(process.argv.slice(2));
}
