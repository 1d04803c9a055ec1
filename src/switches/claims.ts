/**
 * Agent and prompt switches, in the planner: its claims pass over the tasks of
 * every paused agent and prompt version (the claim's exclusion list), so they
 * stay `queued`, neither started nor failed, and are claimed like any other once
 * the switch lifts.
 *
 * A lift publishes a wake-up for each queued task of its scope (the ones those
 * tasks had were spent on claims that passed them over). One may reach a planner
 * whose board has not seen the lift yet; rather than spend it on a claim that
 * finds nothing, the planner reads the switches again and, if one lifted, claims
 * again. The reaper's sweep of stale queued tasks stays the backstop.
 */
import type { SwitchBoard } from "./board";
import type { ClaimExclusions } from "../contracts";
import type { TaskStore } from "../store/types";

type Board = Pick<SwitchBoard, "whenLoaded" | "exclusions" | "refresh">;

const isEmpty = (e: ClaimExclusions) => e.agents.length === 0 && e.prompt_versions.length === 0;

const same = (a: ClaimExclusions, b: ClaimExclusions) =>
  a.agents.length === b.agents.length &&
  a.prompt_versions.length === b.prompt_versions.length &&
  a.agents.every((x) => b.agents.includes(x)) &&
  a.prompt_versions.every((x) => b.prompt_versions.includes(x));

function union(a: ClaimExclusions | undefined, b: ClaimExclusions): ClaimExclusions {
  if (a === undefined || isEmpty(a)) return b;
  return { agents: [...new Set([...a.agents, ...b.agents])], prompt_versions: [...new Set([...a.prompt_versions, ...b.prompt_versions])] };
}

/** `store` whose `claimNext` passes over what `board` has paused; every other method is `store`'s own. */
export function claimsHonouringSwitches<S extends Pick<TaskStore, "claimNext">>(store: S, board: Board): S {
  const claimNext: TaskStore["claimNext"] = async (owner, caps, exclude) => {
    // No claim before the switches are known: a planner just started must not run a paused agent's task.
    await board.whenLoaded();
    const paused = board.exclusions();
    const claim = await store.claimNext(owner, caps, union(exclude, paused));
    if (claim !== null || isEmpty(paused)) return claim;
    await board.refresh();
    const now = board.exclusions();
    return same(now, paused) ? null : store.claimNext(owner, caps, union(exclude, now));
  };
  return Object.assign(Object.create(store) as S, { claimNext });
}
