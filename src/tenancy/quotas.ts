/**
 * Per-tenant quotas as configured (src/config.ts reads them): a cap on running
 * tasks, honoured when a planner claims (src/store/fairClaim.ts), and a submit
 * rate with a burst, honoured by intake (submitRate.ts). Defaults apply to every
 * tenant; CLAWFLEET_TENANT_QUOTAS overrides them per tenant.
 */
import { z } from "zod";
import { TenantSchema, type RunningCaps } from "../contracts";

/** One tenant's overrides; a null lifts the default for that tenant, an absent field keeps it. */
export const TenantQuotaSchema = z
  .object({
    max_running: z.number().int().positive().nullable().optional(),
    /** Submissions per second, refilled continuously. */
    submit_rate: z.number().positive().nullable().optional(),
    /** Submissions accepted at once from a full bucket. @default max(1, ceil(submit_rate)) */
    submit_burst: z.number().int().positive().optional(),
  })
  .strict();
export const TenantQuotaTableSchema = z.record(TenantSchema, TenantQuotaSchema);
export type TenantQuotaTable = z.infer<typeof TenantQuotaTableSchema>;

export interface TenantQuotaSettings {
  /** Running tasks per tenant; null: no cap. @default null */
  readonly maxRunning: number | null;
  /** Submissions per second per tenant; null: not limited. @default null */
  readonly submitRate: number | null;
  /** Bucket size of the submit rate; null: max(1, ceil(rate)). @default null */
  readonly submitBurst: number | null;
  /** Per-tenant overrides of the three. @default {} */
  readonly tenants: TenantQuotaTable;
}

export const NO_QUOTAS: TenantQuotaSettings = { maxRunning: null, submitRate: null, submitBurst: null, tenants: {} };

/** A tenant's submit bucket: `ratePerSec` tokens a second, holding at most `burst`. */
export interface SubmitLimit {
  readonly ratePerSec: number;
  readonly burst: number;
}

export class TenantQuotas {
  constructor(private readonly settings: TenantQuotaSettings = NO_QUOTAS) {}

  /** The caps a fair claim honours. */
  runningCaps(): RunningCaps {
    const tenants: Record<string, number | null> = {};
    for (const [tenant, q] of Object.entries(this.settings.tenants)) if (q.max_running !== undefined) tenants[tenant] = q.max_running;
    return { default: this.settings.maxRunning, tenants };
  }

  maxRunning(tenant: string): number | null {
    const q = this.settings.tenants[tenant];
    return q?.max_running !== undefined ? q.max_running : this.settings.maxRunning;
  }

  /** Null when the tenant's submissions are not limited. */
  submitLimit(tenant: string): SubmitLimit | null {
    const q = this.settings.tenants[tenant];
    const rate = q?.submit_rate !== undefined ? q.submit_rate : this.settings.submitRate;
    if (rate === null) return null;
    const burst = q?.submit_burst ?? (q?.submit_rate !== undefined ? null : this.settings.submitBurst);
    return { ratePerSec: rate, burst: burst ?? Math.max(1, Math.ceil(rate)) };
  }

  /** False when no tenant's submissions are limited: intake then asks no bucket at all. */
  limitsSubmits(): boolean {
    return this.settings.submitRate !== null || Object.values(this.settings.tenants).some((q) => q.submit_rate != null);
  }
}
