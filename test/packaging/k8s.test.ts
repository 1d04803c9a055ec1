/**
 * packaging - k8s/: every overlay renders with `kubectl kustomize`, every object validates against
 * the Kubernetes (and KEDA) schemas of kubernetes-models, and the rendered objects hold the
 * properties production depends on: pod security, probes, grace period, secrets by reference,
 * disruption budgets, network policies, the planners' autoscaler, and overlays that differ only
 * in image digests, replicas and limits. A promotion is simulated the way the release workflow
 * does it (set image by digest) and must leave no image unpinned.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { Deployment } from "kubernetes-models/apps/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Service, ServiceAccount } from "kubernetes-models/v1";
import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { afterAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { PLANNERS_GROUP, TASKS_READY_CHANNEL } from "../../src/contracts";
import { requireTool, run } from "./tools";

const ROOT = path.resolve(__dirname, "..", "..");
const ROLES = ["api", "checkpoint", "executor", "metrics", "planner", "rate-gateway", "tools"] as const;
const ROLE_SERVICES: Record<(typeof ROLES)[number], string> = {
  api: "api,intake",
  checkpoint: "checkpoint",
  executor: "executor",
  metrics: "metrics",
  planner: "planner",
  "rate-gateway": "rate-gateway",
  tools: "tools",
};
const OVERLAYS = ["staging", "production"] as const;

type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: any };

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "v1/Service": Service,
  "v1/ConfigMap": ConfigMap,
  "v1/ServiceAccount": ServiceAccount,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
};

const hasKubectl = requireTool("kubectl", "rendering and validating the k8s/ overlays is", ["version", "--client"]);

function render(dir: string): Obj[] {
  const out = run("kubectl", ["kustomize", dir, "--load-restrictor", "LoadRestrictionsNone"]);
  return YAML.parseAllDocuments(out).map((d) => d.toJSON() as Obj);
}
const byKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
};
const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

/** A copy of k8s/ where each overlay's images are set the way `kustomize edit set image <name>=<new>@<digest>` sets them. */
function promotedCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-k8s-"));
  fs.cpSync(path.join(ROOT, "k8s"), path.join(dir, "k8s"), { recursive: true });
  for (const overlay of OVERLAYS) {
    const file = path.join(dir, "k8s", "overlays", overlay, "kustomization.yaml");
    const doc = YAML.parseDocument(fs.readFileSync(file, "utf8"));
    const images = doc.get("images") as YAML.YAMLSeq<YAML.YAMLMap>;
    images.items.forEach((item, i) => {
      const name = String(item.get("name"));
      item.set("newName", `registry.example/clawfleet-${name.split("/")[1]}`);
      item.set("digest", `sha256:${"0123456789abcdef".charAt((i + (overlay === "staging" ? 1 : 9)) % 16).repeat(64)}`);
    });
    fs.writeFileSync(file, doc.toString());
  }
  return dir;
}

describe.skipIf(!hasKubectl)("packaging - Kubernetes manifests", () => {
  const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, render(path.join(ROOT, "k8s", "overlays", o))])) as Record<(typeof OVERLAYS)[number], Obj[]>;
  const promoted = promotedCopy();
  afterAll(() => fs.rmSync(promoted, { recursive: true, force: true }));

  it.each(OVERLAYS)("%s: every rendered object validates against its Kubernetes or KEDA schema", (overlay) => {
    for (const o of rendered[overlay]) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `a schema for ${o.apiVersion} ${o.kind}`).toBeDefined();
      if (Model) expect(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
    }
    expect(byKind(rendered[overlay], "Secret"), "no Secret objects: secrets are created outside the repo").toHaveLength(0);
  });

  it.each(OVERLAYS)("%s: one Deployment per role, non-root, read-only, no privilege, with /tmp, probes and grace", (overlay) => {
    const objs = rendered[overlay];
    const config = find(objs, "ConfigMap", "clawfleet-config");
    const graceS = Number(config.data.CLAWFLEET_SHUTDOWN_GRACE_MS) / 1000;
    expect(byKind(objs, "Deployment").map((d) => d.metadata.name).sort()).toEqual(ROLES.map((r) => `clawfleet-${r}`));
    for (const role of ROLES) {
      const d = find(objs, "Deployment", `clawfleet-${role}`);
      const pod = d.spec.template.spec;
      expect(pod.containers, role).toHaveLength(1);
      const c = pod.containers[0];
      expect(pod.securityContext, role).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } });
      expect(c.securityContext, role).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 10001,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
      const tmp = c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === "/tmp");
      expect(pod.volumes.find((v: { name: string }) => v.name === tmp?.name)?.emptyDir, role).toBeDefined();
      expect(pod.terminationGracePeriodSeconds, role).toBeGreaterThanOrEqual(graceS + 5);
      expect(pod.automountServiceAccountToken, role).toBe(false);
      expect(c.ports, role).toEqual([{ name: "http", containerPort: 3000 }]);
      expect(c.readinessProbe.httpGet, role).toEqual({ path: "/health/ready", port: "http" });
      expect(c.livenessProbe.httpGet, role).toEqual({ path: "/health/live", port: "http" });
      expect(c.resources.limits.memory, role).toBe("512Mi");
      const env = Object.fromEntries(c.env.map((e: { name: string }) => [e.name, e]));
      expect(env.SERVICES.value, role).toBe(ROLE_SERVICES[role]);
      for (const secret of ["DATABASE_URL", "REDIS_URL", "ANTHROPIC_API_KEY"]) {
        if (!env[secret]) continue;
        expect(env[secret].value, `${role} ${secret} has no literal value`).toBeUndefined();
        expect(env[secret].valueFrom?.secretKeyRef?.name, `${role} ${secret} by secretKeyRef`).toBeDefined();
      }
      expect(Boolean(env.ANTHROPIC_API_KEY), `${role} holds the provider key`).toBe(role === "rate-gateway");
      expect(c.envFrom, role).toEqual([{ configMapRef: { name: "clawfleet-config" } }]);
    }
    expect(Object.keys(config.data).some((k) => /KEY|PASSWORD|SECRET|TOKEN/i.test(k)), "no secret in the ConfigMap").toBe(false);
    expect(config.data.NODE_OPTIONS).toContain("--max-old-space-size=384");
  });

  it("keeps secret values out of k8s/ entirely", () => {
    const files = fs.readdirSync(path.join(ROOT, "k8s"), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".yaml"));
    for (const f of files) {
      const text = fs.readFileSync(path.join(ROOT, "k8s", f), "utf8");
      expect(text, f).not.toMatch(/kind:\s*Secret\b|sk-ant-|:\/\/[^/\s:]+:[^@\s]+@|stringData:/);
    }
  });

  it.each(OVERLAYS)("%s: a PodDisruptionBudget covers each role's pods", (overlay) => {
    const objs = rendered[overlay];
    for (const role of ROLES) {
      const labels = find(objs, "Deployment", `clawfleet-${role}`).spec.template.metadata.labels;
      const pdbs = byKind(objs, "PodDisruptionBudget").filter((p) => matches(p.spec.selector.matchLabels, labels));
      expect(pdbs, role).toHaveLength(1);
      expect(pdbs[0]?.spec.maxUnavailable ?? pdbs[0]?.spec.minAvailable, role).toBeDefined();
    }
  });

  it.each(OVERLAYS)("%s: network policies deny by default and let only the rate-gateway leave the cluster", (overlay) => {
    const objs = rendered[overlay];
    const policies = byKind(objs, "NetworkPolicy");
    for (const role of ROLES) {
      const labels = find(objs, "Deployment", `clawfleet-${role}`).spec.template.metadata.labels;
      const applying = policies.filter((p) => matches(p.spec.podSelector.matchLabels, labels));
      expect(
        applying.some((p) => p.spec.policyTypes.includes("Egress") && p.spec.policyTypes.includes("Ingress") && !p.spec.egress && !p.spec.ingress),
        `${role}: default deny`,
      ).toBe(true);
      const egress = applying.flatMap((p) => p.spec.egress ?? []);
      const external = egress.filter((r: any) => (r.to ?? []).some((peer: any) => peer.ipBlock));
      const ports = new Set(egress.flatMap((r: any) => (r.ports ?? []).map((p: any) => p.port)));
      if (role === "rate-gateway") {
        expect(external, "rate-gateway reaches the provider").toHaveLength(1);
        expect(external[0].ports).toEqual([{ protocol: "TCP", port: 443 }]);
        expect(external[0].to[0].ipBlock.except).toEqual(expect.arrayContaining(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]));
      } else {
        expect(external, `${role} has no egress outside the cluster`).toHaveLength(0);
        expect([...ports].sort(), `${role}: DNS, NATS, Redis, Postgres only`).toEqual([4222, 5432, 53, 6379].sort());
      }
      for (const rule of egress) {
        expect(rule.to?.length, `${role}: every egress rule names its peers`).toBeGreaterThan(0);
        expect(rule.ports?.length, `${role}: every egress rule names its ports`).toBeGreaterThan(0);
      }
    }
  });

  it.each(OVERLAYS)("%s: KEDA scales the planners on the lag of <namespace>.tasks.ready for group planners", (overlay) => {
    const objs = rendered[overlay];
    const so = find(objs, "ScaledObject", "clawfleet-planner");
    const ns = find(objs, "ConfigMap", "clawfleet-config").data.CLAWFLEET_NAMESPACE;
    expect(so.spec.scaleTargetRef.name).toBe("clawfleet-planner");
    expect(so.spec.triggers).toHaveLength(1);
    const t = so.spec.triggers[0];
    expect(t.type).toBe("redis-streams");
    expect(t.metadata).toMatchObject({ stream: `${ns}.${TASKS_READY_CHANNEL}`, consumerGroup: PLANNERS_GROUP, lagCount: "50" });
    expect(find(objs, "TriggerAuthentication", t.authenticationRef.name).spec.secretTargetRef[0].name).toBe("clawfleet-redis");
    expect(so.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(so.spec.maxReplicaCount).toBeGreaterThan(so.spec.minReplicaCount);
    // The autoscaler owns the planners' replica count; an apply must not reset it.
    expect(find(objs, "Deployment", "clawfleet-planner").spec.replicas).toBeUndefined();
  });

  it("staging and production differ only in image digests, replicas and limits", () => {
    const normalize = (objs: Obj[]) =>
      objs.map((o) => {
        const c = structuredClone(o);
        if (c.kind === "Deployment") {
          delete c.spec.replicas;
          for (const k of c.spec.template.spec.containers) {
            delete k.resources;
            delete k.image;
          }
        }
        if (c.kind === "ScaledObject") {
          delete c.spec.minReplicaCount;
          delete c.spec.maxReplicaCount;
        }
        return c;
      });
    const promotedRender = (o: string) => render(path.join(promoted, "k8s", "overlays", o));
    expect(normalize(promotedRender("staging"))).toEqual(normalize(promotedRender("production")));
    const replicas = (o: Obj[]) => byKind(o, "Deployment").map((d) => d.spec.replicas);
    expect(replicas(rendered.staging)).not.toEqual(replicas(rendered.production));
  });

  it("a promotion (set image by digest) pins every container image of every overlay", () => {
    for (const overlay of OVERLAYS) {
      const kust = YAML.parse(fs.readFileSync(path.join(ROOT, "k8s", "overlays", overlay, "kustomization.yaml"), "utf8")) as { images: Array<{ name: string }> };
      expect(kust.images.map((i) => i.name).sort(), overlay).toEqual(ROLES.map((r) => `clawfleet/${r}`));
      for (const d of byKind(render(path.join(promoted, "k8s", "overlays", overlay)), "Deployment")) {
        const image: string = d.spec.template.spec.containers[0].image;
        expect(image, `${overlay} ${d.metadata.name}`).toMatch(/^registry\.example\/clawfleet-[a-z-]+@sha256:[0-9a-f]{64}$/);
        expect(image).toContain(d.metadata.name.replace(/^clawfleet-/, "clawfleet-"));
      }
    }
  });

  it("the HPA fallback component swaps the ScaledObject for a valid HorizontalPodAutoscaler on the same backlog", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawfleet-hpa-"));
    try {
      fs.writeFileSync(
        path.join(dir, "kustomization.yaml"),
        YAML.stringify({
          apiVersion: "kustomize.config.k8s.io/v1beta1",
          kind: "Kustomization",
          resources: [path.relative(dir, path.join(ROOT, "k8s", "base"))],
          components: [path.relative(dir, path.join(ROOT, "k8s", "components", "hpa-fallback"))],
        }),
      );
      const objs = render(dir);
      expect(byKind(objs, "ScaledObject")).toHaveLength(0);
      expect(byKind(objs, "TriggerAuthentication")).toHaveLength(0);
      const hpa = find(objs, "HorizontalPodAutoscaler", "clawfleet-planner");
      expect(() => new HorizontalPodAutoscaler(hpa as any).validate()).not.toThrow();
      expect(hpa.spec.scaleTargetRef.name).toBe("clawfleet-planner");
      expect(hpa.spec.metrics[0].external.metric.name).toBe("clawfleet_queue_messages");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
