/**
 * Completion webhooks (README, "Webhooks"): the public face of this folder.
 * Intake admits a submit's webhook (`webhookAdmission`); the outbox rows are
 * written by the database in the transaction that ends the task (migration
 * 014); every intake runs a `WebhookDispatcher` over them.
 */
import type { Logger } from "../logging";
import type { TaskStore } from "../store/types";
import { webhookAdmission, type WebhookAdmission } from "./admission";
import { WebhookDispatcher } from "./dispatcher";
import type { WebhookSettings } from "./settings";
import { WebhookGuard, type GuardOptions } from "./ssrf";

export { addressRefusal, classifyAddress } from "./addresses";
export { NO_WEBHOOKS, webhookAdmission, type WebhookAdmission } from "./admission";
export { afterFailure, webhookRetryDelayMs, type RetryPolicy } from "./backoff";
export { WebhookDispatcher, type DispatcherDeps, type DispatcherOptions } from "./dispatcher";
export { postWebhook, type SendOutcome } from "./send";
export { defaultSecretIdOf, parseWebhookSecrets, secretKeyOf, type WebhookSettings } from "./settings";
export { secretKey, signWebhook, verifyWebhook, webhookHeaders } from "./signature";
export { pinnedLookup, systemResolver, WebhookGuard, type CheckedTarget, type GuardOptions, type Resolver } from "./ssrf";

/** What one intake needs: the admission of submits and the delivery loop's parts, from one guard. */
export interface WebhookParts {
  admission: WebhookAdmission;
  dispatcher(store: Pick<TaskStore, "claimWebhooks" | "recordWebhookAttempt">, owner: string, logger: Pick<Logger, "info" | "warn">): WebhookDispatcher;
}

/** `guard` overrides parts of the guard (tests inject a resolver); the settings decide the rest. */
export function webhookParts(settings: WebhookSettings, guard: Partial<GuardOptions> = {}): WebhookParts {
  const check = new WebhookGuard({ allowPrivate: settings.allowPrivate, ...guard });
  const secrets = { byId: settings.secrets };
  return {
    admission: webhookAdmission(secrets, check),
    dispatcher: (store, owner, logger) =>
      new WebhookDispatcher(
        { store, guard: check, secrets, logger },
        {
          owner,
          pollMs: settings.pollMs,
          timeoutMs: settings.timeoutMs,
          connectTimeoutMs: settings.connectTimeoutMs,
          retry: { baseMs: settings.retry.baseMs, maxMs: settings.retry.maxMs, maxAttempts: settings.maxAttempts, maxAgeMs: settings.maxAgeMs },
        },
      ),
  };
}
