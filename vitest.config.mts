import { defineConfig } from "vitest/config";

export default defineConfig({
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
