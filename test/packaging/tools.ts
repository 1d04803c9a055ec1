/**
 * External tools the packaging suites need (docker-compose, kubectl). Outside CI a missing tool
 * skips its suite with a loud banner; with CI=true the suite runs anyway and fails, so CI can
 * never pass without having checked.
 */
import { execFileSync, spawnSync } from "node:child_process";

export const IN_CI = process.env.CI === "true";

export function toolAvailable(cmd: string, args: string[] = ["version"]): boolean {
  const r = spawnSync(cmd, args, { stdio: "ignore", timeout: 20_000 });
  return r.status === 0;
}

/** True when the suite should run; prints the banner when it will be skipped. */
export function requireTool(cmd: string, why: string, args?: string[]): boolean {
  if (toolAvailable(cmd, args)) return true;
  if (IN_CI) return true; // run and fail loudly
  const line = "!".repeat(78);
  process.stderr.write(`\n${line}\n!!  ${cmd} NOT FOUND: ${why} SKIPPED.\n!!  Install it (bash .ci/packaging.sh does) to run them; CI=true makes this a failure.\n${line}\n\n`);
  return false;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024, ...opts });
}
