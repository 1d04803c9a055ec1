/**
 * Which version a new task runs. A running canary takes `canary_weight` percent
 * of new tasks, picked by the task id: its hash falls in one of 100 buckets and
 * buckets below the weight run the canary. The same id always lands in the same
 * bucket (any intake, any time), the buckets are filled evenly, so the canary's
 * share over many tasks is its weight; raising the weight keeps every task that
 * was in the canary's share in it.
 */
import { createHash } from "node:crypto";
import type { Rollout } from "../contracts";

export const BUCKETS = 100;

/** The task's bucket, 0..99: the first 6 bytes of the sha256 of its id (lower case), modulo 100. */
export function bucketOf(taskId: string): number {
  const digest = createHash("sha256").update(taskId.toLowerCase()).digest();
  return digest.readUIntBE(0, 6) % BUCKETS;
}

export interface Routed {
  version: string;
  canary: boolean;
}

/**
 * The version for a new task of an agent whose files have `fileVersion`. Without a rollout row (none yet, or
 * none readable) the files' version runs; with one, its stable version, or its canary for the task ids whose
 * bucket is under the weight while the canary runs.
 */
export function routeVersion(rollout: Rollout | undefined, fileVersion: string, taskId: string): Routed {
  if (!rollout) return { version: fileVersion, canary: false };
  const canary = rollout.canary_state === "running" && rollout.canary_version !== null && rollout.canary_weight > 0;
  if (canary && rollout.canary_version !== null && bucketOf(taskId) < rollout.canary_weight) return { version: rollout.canary_version, canary: true };
  return { version: rollout.stable_version, canary: false };
}
