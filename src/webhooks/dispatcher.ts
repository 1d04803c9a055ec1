/**
 * The delivery loop: claims due outbox rows (src/store/webhooks.ts), makes one
 * attempt each (guard, sign, POST) and records how it went. Every intake runs
 * one; claims skip rows another loop holds, so the loops share the outbox
 * without a leader. A loop that dies mid-attempt leaves its claim to lapse,
 * and the row is claimed and sent again (at least once, same `webhook-id`).
 */
import type { TaskStore } from "../store/types";
import type { WebhookAttemptResult, WebhookClaim } from "../contracts";
import { messageOf } from "../errors";
import type { Logger } from "../logging";
import { afterFailure, type RetryPolicy } from "./backoff";
import { postWebhook, type SendOptions, type SendOutcome } from "./send";
import { defaultSecretIdOf, tenantSecret } from "./settings";
import { secretKey, webhookHeaders } from "./signature";
import type { CheckedTarget, WebhookGuard } from "./ssrf";

export interface DispatcherDeps {
  store: Pick<TaskStore, "claimWebhooks" | "recordWebhookAttempt">;
  guard: Pick<WebhookGuard, "check">;
  /** Secrets by id (`whsec_…`) and the id of the default one. */
  secrets: { byId: Readonly<Record<string, string>> };
  logger: Pick<Logger, "info" | "warn">;
  /** @default postWebhook */
  send?: (target: CheckedTarget, headers: Record<string, string>, body: string, opts: SendOptions) => Promise<SendOutcome>;
  /** @default Date.now */
  now?: () => number;
}

export interface DispatcherOptions {
  /** Who claims, e.g. `${nodeID}:webhooks`. */
  owner: string;
  pollMs: number;
  timeoutMs: number;
  connectTimeoutMs: number;
  retry: RetryPolicy;
  /** Deliveries claimed (and attempted at once) per turn. @default 16 */
  batch?: number;
}

export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private turn: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  /** A claim outlives its attempt's whole budget, so a live attempt is never taken over. */
  readonly claimMs: number;
  private readonly batch: number;

  constructor(
    private readonly deps: DispatcherDeps,
    private readonly opts: DispatcherOptions,
  ) {
    this.claimMs = opts.timeoutMs * 2 + 1000;
    this.batch = opts.batch ?? 16;
  }

  start(): void {
    if (this.timer || this.stopping.signal.aborted) return;
    this.timer = setInterval(() => void this.tick(), this.opts.pollMs);
    this.timer.unref();
  }

  /** Stops claiming; attempts under way are aborted and recorded as failed, to be tried again. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stopping.abort();
    await this.turn;
  }

  /** One turn, never two at once: claims a batch and attempts it; more turns follow at once while batches come full. Logs, never throws. */
  tick(): Promise<void> {
    this.turn ??= this.drain().finally(() => (this.turn = undefined));
    return this.turn;
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        if (this.stopping.signal.aborted) return;
        const claims = await this.deps.store.claimWebhooks(this.opts.owner, this.batch, this.claimMs);
        await Promise.all(claims.map((c) => this.attempt(c)));
        if (claims.length < this.batch) return;
      }
    } catch (err) {
      this.deps.logger.warn({ event: "webhook.loop_failed", err: messageOf(err) }, "webhook delivery turn failed");
    }
  }

  private async attempt(claim: WebhookClaim): Promise<void> {
    const now = this.deps.now ?? Date.now;
    const startedAt = now();
    const outcome = await this.deliver(claim).catch((err: unknown): SendOutcome => ({ delivered: false, statusCode: null, error: messageOf(err).slice(0, 500), durationMs: 0 }));
    const next: WebhookAttemptResult["next"] = outcome.delivered
      ? { state: "delivered" }
      : afterFailure(claim.attempt, Date.parse(claim.created_at), now(), this.opts.retry);
    const result: WebhookAttemptResult = {
      started_at: new Date(startedAt).toISOString(),
      duration_ms: outcome.durationMs,
      status_code: outcome.statusCode,
      error: outcome.error === null ? null : outcome.error.slice(0, 1000),
      next,
    };
    try {
      const current = await this.deps.store.recordWebhookAttempt(claim.id, this.opts.owner, claim.attempt, result);
      const fields = { event: "webhook.attempt", taskId: claim.task_id, webhookId: claim.id, attempt: claim.attempt, status: outcome.statusCode, next: next.state };
      if (!current) this.deps.logger.warn({ ...fields, event: "webhook.claim_lost" }, "a newer claim took this delivery over; its outcome is kept as history");
      else if (next.state === "failed") this.deps.logger.warn({ ...fields, err: outcome.error }, "webhook delivery gave up");
      else if (next.state === "pending") this.deps.logger.info({ ...fields, err: outcome.error, retryInMs: next.retry_in_ms }, "webhook attempt failed; will retry");
    } catch (err) {
      // The claim lapses and the row is sent again: at least once.
      this.deps.logger.warn({ event: "webhook.record_failed", webhookId: claim.id, err: messageOf(err) }, "could not record a webhook attempt");
    }
  }

  /** Guard (again: DNS may have changed since the submit), sign with this attempt's timestamp, send. */
  private async deliver(claim: WebhookClaim): Promise<SendOutcome> {
    const startedAt = performance.now();
    const elapsed = () => Math.round(performance.now() - startedAt);
    // Only the task's own tenant's secrets sign its events.
    const secretId = claim.secret_id ?? defaultSecretIdOf(this.deps.secrets.byId, claim.tenant);
    const secret = secretId === undefined ? undefined : tenantSecret(this.deps.secrets.byId, claim.tenant, secretId);
    if (secret === undefined) {
      return { delivered: false, statusCode: null, error: `no webhook secret "${secretId ?? "default"}" is configured for the task's tenant (CLAWFLEET_WEBHOOK_SECRETS)`, durationMs: 0 };
    }
    let target: CheckedTarget;
    try {
      target = await this.deps.guard.check(claim.url);
    } catch (err) {
      return { delivered: false, statusCode: null, error: messageOf(err), durationMs: elapsed() };
    }
    const headers = webhookHeaders(secretKey(secret), claim.id, claim.payload, (this.deps.now ?? Date.now)());
    const send = this.deps.send ?? postWebhook;
    const outcome = await send(target, headers, claim.payload, {
      timeoutMs: this.opts.timeoutMs,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      signal: this.stopping.signal,
    });
    return { ...outcome, durationMs: elapsed() };
  }
}
