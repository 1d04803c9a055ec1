import path from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  // The examples import the package by its name; in this checkout the names are the sources (as in
  // examples/tsconfig.json), so `npm test` needs no build and never runs against a stale one.
  resolve: {
    alias: [
      { find: /^clawfleet\/mixins$/, replacement: path.resolve(import.meta.dirname, "mixins/index.ts") },
      { find: /^clawfleet$/, replacement: path.resolve(import.meta.dirname, "app/index.ts") },
    ],
  },
  test: {
    globalSetup: ["test/globalSetup.ts"],
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: process-level suites spawn clusters of their own; run files two at a time at most.
    maxWorkers: 2,
    pool: "forks",
  },
});
