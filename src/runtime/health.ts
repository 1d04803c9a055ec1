/**
 * Readiness of this process: each role registers a check when it has started,
 * and `/health/ready` is 200 only when every expected role reports ready.
 */
export interface CheckResult {
  ok: boolean;
  reason?: string;
}

export class Health {
  private readonly checks = new Map<string, () => CheckResult>();
  private readonly started = Date.now();

  constructor(private readonly expected: readonly string[]) {}

  register(name: string, check: () => CheckResult = () => ({ ok: true })): void {
    this.checks.set(name, check);
  }

  unregister(name: string): void {
    this.checks.delete(name);
  }

  live(): { status: "ok"; uptime_s: number } {
    return { status: "ok", uptime_s: Math.round((Date.now() - this.started) / 1000) };
  }

  ready(): { ready: boolean; checks: Record<string, CheckResult> } {
    const checks: Record<string, CheckResult> = {};
    for (const name of this.expected) {
      const check = this.checks.get(name);
      if (!check) {
        checks[name] = { ok: false, reason: "not started" };
        continue;
      }
      try {
        checks[name] = check();
      } catch (err) {
        checks[name] = { ok: false, reason: (err as Error).message };
      }
    }
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }
}
