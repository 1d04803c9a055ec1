/**
 * When and where the canary judge looks: once per interval, on the one process
 * in the cluster that holds the `__canary_judge__` lease (every intake runs a
 * loop; the lease, on the same lease manager as the reaper's, makes one of them
 * the judge, and another takes over within a few intervals when it dies).
 *
 * Each look reads every running canary's figures, asks judge.ts for a verdict
 * and applies it with `decideCanary`, which changes the rollout row only at the
 * revision the verdict was made on. So a verdict is applied at most once even if
 * two processes both believe they lead for a moment (a paused judge whose lease
 * lapsed), and an operator's abort or a deploy in between wins over a stale one.
 * The loop keeps no state of its own: a new judge picks up from Postgres.
 */
import type { CanaryJudgeEventName, CanaryJudgeEventPayload, JudgeEvidence, Rollout } from "../contracts";
import { messageOf } from "../errors";
import type { LeaseManager } from "../lease/types";
import type { Logger } from "../logging";
import type { TaskStore } from "../store/types";
import type { Metrics } from "../telemetry/metrics";
import { DEFAULT_JUDGE_SETTINGS, judgeCanary, type JudgeSettings, type Verdict } from "./judge";

/** The lease that elects the cluster's one canary judge. */
export const JUDGE_LEASE = "__canary_judge__";

export interface JudgeLoopDeps {
  /** The store, its calls bounded by `callTimeoutMs`: a lost message costs a look, never the judge. */
  store(callTimeoutMs: number): Pick<TaskStore, "listRollouts" | "canaryStats" | "decideCanary">;
  leases: Pick<LeaseManager, "acquire" | "renew">;
  /** Sends a control event to every node: intakes refresh their routing on it at once. Must not throw. */
  broadcast<N extends CanaryJudgeEventName>(name: N, payload: CanaryJudgeEventPayload<N>): void;
  metrics?: Pick<Metrics, "canaryWeights" | "canaryWatched" | "canaryDecided">;
  logger: Pick<Logger, "info" | "warn">;
  /** Clock, for tests. @default () => new Date() */
  now?: () => Date;
}

export interface JudgeLoopOptions {
  /** Who holds the judge lease, e.g. `${nodeID}:judge`. */
  owner: string;
  /** The node named in the events. */
  node: string;
  /** Time between looks. */
  intervalMs: number;
  settings?: JudgeSettings;
}

/** What one look did for one canary. */
export interface JudgeOutcome {
  agent: string;
  verdict: Verdict;
  /** False for `hold`, and for a decision the row had moved past (another judge, an abort, a deploy). */
  applied: boolean;
}

export class CanaryJudgeLoop {
  readonly callTimeoutMs: number;
  private readonly leaseTtlMs: number;
  private readonly store: ReturnType<JudgeLoopDeps["store"]>;
  private readonly settings: JudgeSettings;
  private readonly now: () => Date;
  private timer: NodeJS.Timeout | undefined;
  private looking = false;

  constructor(
    private readonly deps: JudgeLoopDeps,
    private readonly opts: JudgeLoopOptions,
  ) {
    this.callTimeoutMs = Math.max(10_000, opts.intervalMs * 10);
    this.leaseTtlMs = Math.max(opts.intervalMs * 3, 3000);
    this.store = deps.store(this.callTimeoutMs);
    this.settings = opts.settings ?? DEFAULT_JUDGE_SETTINGS;
    this.now = deps.now ?? (() => new Date());
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** Stops scheduling looks; one already running finishes on its own. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * One look, if this process holds (or wins) the judge lease: answers what it did per running canary, or
   * null when it does not lead or a look is already running. Logs, never throws.
   */
  async tick(): Promise<JudgeOutcome[] | null> {
    if (this.looking) return null;
    this.looking = true;
    const { leases, logger, metrics } = this.deps;
    try {
      const { owner } = this.opts;
      const leads = (await leases.renew(JUDGE_LEASE, owner, this.leaseTtlMs)) || (await leases.acquire(JUDGE_LEASE, owner, this.leaseTtlMs));
      if (!leads) {
        metrics?.canaryWeights([]);
        return null;
      }
      const rollouts = await this.store.listRollouts();
      const outcomes: JudgeOutcome[] = [];
      const weights: Array<{ agent: string; version: string; weight: number }> = [];
      for (const rollout of rollouts) {
        // Every agent's decision series exists before its first decision (see Metrics.canaryWatched).
        metrics?.canaryWatched(rollout.agent);
        if (rollout.canary_state !== "running") continue;
        const outcome = await this.judge(rollout).catch((err: unknown) => {
          logger.warn({ event: "canary.judge_failed", agent: rollout.agent, err: messageOf(err) }, "canary judge could not look at a canary");
          return undefined;
        });
        if (outcome) outcomes.push(outcome.outcome);
        const now = outcome?.rollout ?? rollout;
        if (now.canary_state === "running" && now.canary_version !== null) {
          weights.push({ agent: now.agent, version: now.stable_version, weight: 100 - now.canary_weight });
          weights.push({ agent: now.agent, version: now.canary_version, weight: now.canary_weight });
        }
      }
      metrics?.canaryWeights(weights);
      return outcomes;
    } catch (err) {
      logger.warn({ event: "canary.judge_failed", err: messageOf(err) }, "canary judge look failed");
      return null;
    } finally {
      this.looking = false;
    }
  }

  /** Reads one running canary's figures and applies the verdict; answers it with the row as it is now. */
  private async judge(rollout: Rollout): Promise<{ outcome: JudgeOutcome; rollout: Rollout }> {
    const { agent, canary_version: canary, canary_started_at: since } = rollout;
    if (canary === null || since === null) throw new Error(`the rollout row of ${agent} is running without a canary version or start time`);
    const stats = await this.store.canaryStats(agent, rollout.stable_version, canary, since, rollout.step_started_at ?? since);
    const verdict = judgeCanary(rollout, stats, this.now(), this.settings);
    if (verdict.action === "hold") return { outcome: { agent, verdict, applied: false }, rollout };

    const change =
      verdict.action === "rollback"
        ? { canary_state: "rolled_back" as const, canary_weight: 0, evidence: { judge: verdict.evidence, decided_by: "judge" } }
        : verdict.final
          ? { canary_state: "promoted" as const, evidence: { judge: verdict.evidence, decided_by: "judge", promotions: promotionsOf(rollout, verdict.evidence, null) } }
          : { step_index: verdict.stepIndex, canary_weight: verdict.weight, evidence: { judge: verdict.evidence, promotions: promotionsOf(rollout, verdict.evidence, verdict.weight) } };
    const result = await this.store.decideCanary(agent, rollout.revision, change);
    const after = result.rollout ?? rollout;
    if (!result.applied) {
      this.deps.logger.info(
        { event: "canary.decision_superseded", agent, version: canary, action: verdict.action, revision: rollout.revision, now_revision: after.revision, state: after.canary_state },
        "the rollout changed since the judge read it; its verdict was not applied",
      );
      return { outcome: { agent, verdict, applied: false }, rollout: after };
    }
    this.announce(after, canary, verdict);
    return { outcome: { agent, verdict, applied: true }, rollout: after };
  }

  /** Metrics, the event and the log line of an applied decision. */
  private announce(after: Rollout, canary: string, verdict: Exclude<Verdict, { action: "hold" }>): void {
    const { logger, metrics } = this.deps;
    const base = {
      agent: after.agent,
      version: canary,
      stable_version: after.stable_version,
      revision: after.revision,
      by: "judge" as const,
      at: this.now().toISOString(),
      node: this.opts.node,
    };
    const e = verdict.evidence;
    if (verdict.action === "rollback") {
      metrics?.canaryDecided(after.agent, "rolled_back");
      this.deps.broadcast("clawfleet.control.canary_rolled_back", { ...base, metrics: verdict.harmful, evidence: e });
      logger.warn(
        {
          event: "canary.rolled_back",
          agent: after.agent,
          version: canary,
          stable_version: after.stable_version,
          metrics: verdict.harmful,
          step: e.step,
          weight: e.weight,
          canary_tasks: e.canary_tasks,
          stable_tasks: e.stable_tasks,
          evidence: e.metrics,
        },
        `canary ${canary} of ${after.agent} rolled back: ${verdict.harmful.map((m) => describe(m, e)).join("; ")}`,
      );
      return;
    }
    metrics?.canaryDecided(after.agent, verdict.final ? "promoted" : "step");
    const step = verdict.final ? e.step : verdict.stepIndex + 1;
    this.deps.broadcast("clawfleet.control.canary_promoted", { ...base, weight: after.canary_weight, step, final: verdict.final, evidence: e });
    logger.info(
      { event: "canary.promoted", agent: after.agent, version: canary, weight: after.canary_weight, step, final: verdict.final, canary_tasks: e.canary_tasks, stable_tasks: e.stable_tasks },
      verdict.final ? `canary ${canary} of ${after.agent} promoted: it is the stable version now` : `canary ${canary} of ${after.agent} up to ${verdict.weight}% of new tasks`,
    );
  }
}

/** One harmful metric in words, for the log line. */
function describe(metric: keyof JudgeEvidence["metrics"], e: JudgeEvidence): string {
  const m = e.metrics[metric];
  if (!m) return metric;
  const f = (x: number) => Number(x.toPrecision(4));
  return `${metric} ${f(m.canary.mean)} against ${f(m.stable.mean)} (tolerance ${f(m.tolerance)}, log Λ ${m.log_lambda === null ? "n/a" : f(m.log_lambda)} ≥ ${f(m.threshold)})`;
}

interface PromotionEntry {
  from_step: number;
  /** The share the canary moved to; null: it became the stable version. */
  to_weight: number | null;
  at: string;
  canary_tasks: number;
  canary_tasks_this_step: number;
  stable_tasks: number;
}

/** The canary's promotions so far (kept in its evidence) and this one. */
function promotionsOf(rollout: Rollout, e: JudgeEvidence, toWeight: number | null): PromotionEntry[] {
  const earlier = rollout.evidence?.promotions;
  const list = Array.isArray(earlier) ? (earlier as PromotionEntry[]) : [];
  return [
    ...list,
    { from_step: e.step, to_weight: toWeight, at: e.at, canary_tasks: e.canary_tasks, canary_tasks_this_step: e.canary_tasks_this_step, stable_tasks: e.stable_tasks },
  ];
}
