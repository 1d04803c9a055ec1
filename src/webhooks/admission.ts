/**
 * A submit's `webhook`, as intake admits it: a secret must be there to sign
 * with, and the URL must pass the SSRF guard. What is stored with the task is
 * the URL as written and the secret's id resolved (the default one named).
 */
import type { TaskWebhook, WebhookRequest } from "../contracts";
import { ValidationError } from "../errors";
import type { WebhookGuard } from "./ssrf";

export interface WebhookAdmission {
  /** The webhook to store with the task; ValidationError or WebhookUrlRefusedError (422) when it cannot be. */
  admit(request: WebhookRequest): Promise<TaskWebhook>;
}

export function webhookAdmission(secrets: { byId: Readonly<Record<string, string>>; defaultId: string | undefined }, guard: Pick<WebhookGuard, "check">): WebhookAdmission {
  return {
    async admit(request) {
      const ids = Object.keys(secrets.byId);
      if (ids.length === 0) {
        throw new ValidationError("a webhook needs a signing secret, and none is configured (CLAWFLEET_WEBHOOK_SECRETS)", { field: "webhook" });
      }
      const secretId = request.secret_id ?? secrets.defaultId;
      if (secretId === undefined) {
        throw new ValidationError(`no default webhook secret is configured (none is named "default"): name one with webhook.secret_id`, {
          field: "webhook.secret_id",
        });
      }
      if (!Object.hasOwn(secrets.byId, secretId)) {
        throw new ValidationError(`no webhook secret "${secretId}" is configured`, { field: "webhook.secret_id" });
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
