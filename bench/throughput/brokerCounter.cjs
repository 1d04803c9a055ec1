/**
 * Preloaded (`node --require`) into a Clawfleet node by the throughput benchmark:
 * counts the node's Moleculer traffic (broker calls by action, remote requests
 * sent, events emitted, transporter packets published by type) and writes the
 * totals as JSON to `$CF_BENCH_COUNTS_DIR/<pid>.json` once a second when they
 * changed, and at exit.
 * Counting only: it changes no call.
 */
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { isMainThread } = require("node:worker_threads");

const dir = process.env.CF_BENCH_COUNTS_DIR;
// NODE_OPTIONS reaches worker threads too: only the main thread's broker is counted.
if (dir && isMainThread) {
  const { ServiceBroker, Transit } = require("moleculer");
  const counts = {};
  let changed = false;
  const bump = (key) => {
    counts[key] = (counts[key] ?? 0) + 1;
    changed = true;
  };
  const wrap = (proto, method, keyOf) => {
    const original = proto[method];
    proto[method] = function counted(...args) {
      bump(keyOf(...args));
      return original.apply(this, args);
    };
  };
  wrap(ServiceBroker.prototype, "call", (action) => `call ${typeof action === "string" ? action : (action?.name ?? "?")}`);
  wrap(ServiceBroker.prototype, "emit", (event) => `emit ${event}`);
  wrap(ServiceBroker.prototype, "broadcast", (event) => `broadcast ${event}`);
  wrap(Transit.prototype, "_sendRequest", (ctx) => `remote ${ctx?.action?.name ?? "?"}`);
  wrap(Transit.prototype, "publish", (packet) => `packet ${packet?.type ?? "?"}`);
  const file = path.join(dir, `${process.pid}.json`);
  // Written aside and renamed: a reader never sees half a file.
  const flush = () => {
    if (!changed) return;
    changed = false;
    try {
      fs.writeFileSync(`${file}.tmp`, JSON.stringify({ pid: process.pid, counts }));
      fs.renameSync(`${file}.tmp`, file);
    } catch {
      // the folder is gone: the benchmark is over
    }
  };
  setInterval(flush, 1_000).unref();
  process.on("exit", flush);
}
