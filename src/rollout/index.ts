/**
 * Prompt versions as data and their rollout: pinning a task to the version it was submitted with
 * (versions.ts), routing new tasks between the stable version and a canary (router.ts, cache.ts), the
 * operator's controls (control.ts) and the judge that moves a canary on (judge*.ts).
 */
export { ROLLOUT_REFRESH_MS, RolloutCache } from "./cache";
export { agentView, canaryEventSink, Rollouts, summaryOf, type Broadcaster, type CanaryEventSink, type RolloutStore, type RolloutsDeps } from "./control";
export { BUCKETS, bucketOf, routeVersion, type Routed } from "./router";
export { AgentVersions, pinnedAgent, versionsOf, type VersionStore } from "./versions";
