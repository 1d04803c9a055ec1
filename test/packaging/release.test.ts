/**
 * packaging - the release workflow: built once (every role target, the Node base pinned by the
 * digest it resolves from .nvmrc), tested inside the image, scanned with CRITICAL blocking, then
 * the same digests promoted through the overlays; no job after the build builds anything.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";

const ROOT = path.resolve(__dirname, "..", "..");
const wf = YAML.parse(fs.readFileSync(path.join(ROOT, ".github/workflows/release.yml"), "utf8")) as {
  env: Record<string, string>;
  jobs: Record<string, { needs?: string | string[]; if?: string; environment?: string; steps: Array<{ name?: string; run?: string; uses?: string }> }>;
};
const runs = (job: string) =>
  (wf.jobs[job]?.steps ?? [])
    .map((s) => s.run ?? "")
    .join("\n");
const scripts = (name: string) => fs.readFileSync(path.join(ROOT, ".github/scripts", name), "utf8");

describe("packaging - release workflow", () => {
  it("builds every role target once, with the Node version from .nvmrc and its resolved digest", () => {
    expect((wf.env.ROLES ?? "").split(" ").sort()).toEqual(["api", "checkpoint", "executor", "metrics", "planner", "rate-gateway", "tools"]);
    const build = runs("build");
    expect(build).toContain("< .nvmrc");
    expect(build).toContain("docker buildx imagetools inspect");
    expect(build).toMatch(/--build-arg "NODE_DIGEST=\$NODE_DIGEST"/);
    expect(build).toMatch(/--target "\$role"/);
    expect(build).toContain("sha-${GITHUB_SHA}");
  });

  it("tests inside the built image and scans it with Trivy, CRITICAL failing the job, before pushing", () => {
    const steps = wf.jobs.build?.steps ?? [];
    const at = (re: RegExp) => steps.findIndex((s) => re.test(s.run ?? ""));
    const test = at(/clawfleet-builder:\$GITHUB_SHA" npx vitest run/);
    const scan = at(/--severity CRITICAL --ignore-unfixed --exit-code 1/);
    const push = at(/docker push/);
    expect(test).toBeGreaterThan(-1);
    expect(scan).toBeGreaterThan(test);
    expect(push).toBeGreaterThan(scan);
  });

  it("promotes the pushed digests to staging, then production on a version tag, without rebuilding", () => {
    expect(wf.jobs["promote-staging"]?.needs).toEqual("build");
    expect(wf.jobs["promote-staging"]?.environment).toBe("staging");
    expect(wf.jobs["promote-production"]?.needs).toEqual(["build", "promote-staging"]);
    expect(wf.jobs["promote-production"]?.environment).toBe("production");
    expect(wf.jobs["promote-production"]?.if).toContain("refs/tags/v");
    for (const job of ["promote-staging", "promote-production"]) {
      expect(runs(job)).not.toMatch(/docker (buildx )?build/);
      expect(runs(job)).toMatch(/promote\.sh (staging|production)/);
    }
    const promote = scripts("promote.sh");
    expect(promote).toContain('kustomize edit set image "clawfleet/$role=$ref"');
    expect(promote).toContain("@sha256:[0-9a-f]{64}$");
  });
});
