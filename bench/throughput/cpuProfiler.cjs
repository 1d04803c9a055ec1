/**
 * Preloaded (`node --require`) into a measured process when CF_BENCH_PROFILE_DIR is
 * set: what `node --cpu-prof` does (which NODE_OPTIONS may not carry), through the
 * inspector — the V8 sampling profiler runs from start-up, and at exit its profile
 * is written to `$CF_BENCH_PROFILE_DIR/<pid>.cpuprofile` for profileTop.ts.
 */
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const inspector = require("node:inspector");
const { isMainThread } = require("node:worker_threads");

const dir = process.env.CF_BENCH_PROFILE_DIR;
if (dir && isMainThread) {
  const session = new inspector.Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.start");
  process.on("exit", () => {
    // The in-thread session answers synchronously: the profile is written before the process ends.
    session.post("Profiler.stop", (err, res) => {
      if (err) return;
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
