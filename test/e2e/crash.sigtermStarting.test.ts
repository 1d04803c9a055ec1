/**
 * SIGTERM while a node starts - a real `clawfleet start` process (embedded) is sent
 * SIGTERM as soon as its broker begins to start, before its roles are up: it finishes
 * starting, then stops gracefully (exit 0, its stop logged), rather than dying of the
 * signal halfway through its start.
 */
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EXAMPLES_ENV, freePort, packageResolutionEnv, ROOT, spawnCaptured } from "../../testkit/cluster";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a node sent SIGTERM while it starts", () => {
  it("stops gracefully once started, with exit code 0", async () => {
    const port = await freePort();
    const { proc, output, exited } = spawnCaptured([path.join(ROOT, "bin", "clawfleet.js"), "start"], {
      ...EXAMPLES_ENV,
      ...packageResolutionEnv(),
      CLAWFLEET_DATA_DIR: "memory://",
      CLAWFLEET_AUTH: "off",
      CLAWFLEET_LOG_FORMAT: "json",
      LOG_LEVEL: "info",
      PORT: String(port),
    });
    try {
      // Moleculer's first line: the broker exists, and its start (roles, store, queue) has not run yet.
      const deadline = Date.now() + 60_000;
      while (!output().includes("is starting...")) {
        if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`the node never began to start:\n${output().slice(-3000)}`);
        await sleep(5);
      }
      proc.kill("SIGTERM");
      const exit = await exited;
      expect(exit, output().slice(-3000)).toEqual({ code: 0, signal: null });
      expect(output()).toContain('"event":"node.signal_while_starting"');
      expect(output()).toContain('"event":"node.stopped"');
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    }
  }, 90_000);
});
