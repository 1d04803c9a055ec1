/**
 * `promtool` for tests: found on PATH, or the suite that needs it is skipped
 * loudly; in CI (CI=true or CLAWFLEET_REQUIRE_SERVICES=1) a missing promtool fails.
 * `.ci/observability.sh` installs it (Debian's `prometheus` package).
 */
import { spawnSync } from "node:child_process";

export function hasPromtool(): boolean {
  const r = spawnSync("promtool", ["--version"], { encoding: "utf8" });
  if (r.status === 0) return true;
  const required = process.env.CI === "true" || process.env.CLAWFLEET_REQUIRE_SERVICES === "1";
  const line = "!".repeat(78);
  const msg = `${line}\n!!  promtool NOT FOUND: the promtool checks are ${required ? "REQUIRED in CI and FAIL" : "SKIPPED"}.\n!!  Install it: apt-get install -y prometheus (or run .ci/observability.sh).\n${line}`;
  process.stderr.write(`\n${msg}\n\n`);
  if (required) throw new Error("promtool is required in CI but was not found on PATH");
  return false;
}

/** `promtool check metrics` on a scrape: exit status and whatever it reported. */
export function promtoolCheckMetrics(scrape: string): { status: number | null; output: string } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: scrape, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Metric names a scrape exports (its `# TYPE` lines), with the series names of histograms and summaries. */
export function exportedNames(scrape: string): Set<string> {
  const names = new Set<string>();
  for (const m of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(`${name}${s}`);
    if (type === "summary") for (const s of ["_sum", "_count"]) names.add(`${name}${s}`);
  }
  return names;
}

/** `clawfleet_*` metric names an expression, rule file or dashboard refers to (recording-rule names with `:` excluded). */
export function referencedNames(text: string): Set<string> {
  return new Set([...text.matchAll(/(?<![:\w])clawfleet_[a-zA-Z0-9_]+(?![:\w])/g)].map((m) => m[0]));
}
