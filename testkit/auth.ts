/**
 * API keys for test and bench clusters that run with authentication on (the
 * distributed default): a fixed bootstrap admin secret to start nodes with,
 * and a key issued through `POST /v1/keys` with it.
 */
export const TEST_ADMIN_KEY = "clawfleet-test-admin-secret-0123456789";

/** Issues a key of `tenant` with `scopes` on the cluster at `base`; answers the key to send as a bearer. */
export async function issueTestKey(
  base: string,
  opts: { adminKey?: string; tenant?: string; scopes?: readonly string[] } = {},
): Promise<string> {
  const r = await fetch(`${base}/v1/keys`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${opts.adminKey ?? TEST_ADMIN_KEY}` },
    body: JSON.stringify({ tenant: opts.tenant ?? "default", scopes: opts.scopes ?? ["submit", "read", "operate"] }),
  });
  const body = (await r.json()) as { key?: string };
  if (r.status !== 201 || body.key === undefined) throw new Error(`POST /v1/keys answered ${r.status}: ${JSON.stringify(body)}`);
  return body.key;
}

export const bearer = (key: string): Record<string, string> => ({ Authorization: `Bearer ${key}` });
