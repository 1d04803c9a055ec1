/** Per-tenant quotas: the running cap a fair claim honours, and the submit rate intake enforces. */
import type { Redis } from "ioredis";
import { TenantQuotas, type TenantQuotaSettings } from "./quotas";
import { MemorySubmitBuckets, RedisSubmitBuckets, SubmitQuota } from "./submitRate";

export { NO_QUOTAS, TenantQuotas, TenantQuotaTableSchema, type SubmitLimit, type TenantQuotaSettings, type TenantQuotaTable } from "./quotas";
export { MemorySubmitBuckets, RedisSubmitBuckets, SubmitQuota, type SubmitBuckets, type TakeOutcome } from "./submitRate";

/**
 * Intake's submit gate for a node: buckets in Redis when `redis` is given (distributed mode,
 * keys under `prefix`), in memory otherwise; undefined when no tenant's submissions are limited.
 */
export function submitQuotaFor(settings: TenantQuotaSettings, redis: (() => Redis) | undefined, prefix: string): SubmitQuota | undefined {
  const quotas = new TenantQuotas(settings);
  if (!quotas.limitsSubmits()) return undefined;
  return new SubmitQuota(quotas, redis ? new RedisSubmitBuckets(redis(), { prefix }) : new MemorySubmitBuckets());
}
