/**
 * A submit's `webhook`, as intake admits it: a secret must be there to sign
 * with, and the URL must pass the SSRF guard. What is stored with the task is
 * the URL as written and the secret's id resolved (the default one named).
 */
import { DEFAULT_TENANT, type TaskWebhook, type WebhookRequest } from "../contracts";
import { ValidationError } from "../errors";
import { defaultSecretIdOf, secretIdsOf, tenantSecret } from "./settings";
import type { WebhookGuard } from "./ssrf";

export interface WebhookAdmission {
  /** The webhook to store with `tenant`'s task; ValidationError or WebhookUrlRefusedError (422) when it cannot be. */
  admit(request: WebhookRequest, tenant?: string): Promise<TaskWebhook>;
}

/** Where a tenant's secrets are configured, for the messages. */
const whereFor = (tenant: string): string =>
  tenant === DEFAULT_TENANT ? "CLAWFLEET_WEBHOOK_SECRETS" : `CLAWFLEET_WEBHOOK_SECRETS, as "${tenant}:<id>"`;

export function webhookAdmission(secrets: { byId: Readonly<Record<string, string>> }, guard: Pick<WebhookGuard, "check">): WebhookAdmission {
  return {
    async admit(request, tenant = DEFAULT_TENANT) {
      // Only the tenant's own secrets: another tenant's would sign events that tenant's receivers trust.
      if (secretIdsOf(secrets.byId, tenant).length === 0) {
        throw new ValidationError(`a webhook needs a signing secret, and none is configured for this tenant (${whereFor(tenant)})`, { field: "webhook" });
      }
      const secretId = request.secret_id ?? defaultSecretIdOf(secrets.byId, tenant);
      if (secretId === undefined) {
        throw new ValidationError(`no default webhook secret is configured for this tenant (none is named "default"): name one with webhook.secret_id`, {
          field: "webhook.secret_id",
        });
      }
      if (tenantSecret(secrets.byId, tenant, secretId) === undefined) {
        throw new ValidationError(`no webhook secret "${secretId}" is configured for this tenant (${whereFor(tenant)})`, { field: "webhook.secret_id" });
      }
      await guard.check(request.url);
      return { url: request.url, secret_id: secretId };
    },
  };
}

/** Intake without webhook settings: every webhook is refused, never silently dropped. */
export const NO_WEBHOOKS: WebhookAdmission = {
  admit: () => Promise.reject(new ValidationError("webhooks are not available on this intake", { field: "webhook" })),
};
