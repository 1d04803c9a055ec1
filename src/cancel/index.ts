/** Cancelling a task: intake's side (`Canceller`), the planner's per-attempt side (`AttemptCancel`), and the ids a node remembers. */
export { cancelBodyOf } from "./body";
export { AttemptCancel, type AttemptCancelDeps } from "./attemptCancel";
export { ABORT_ACK_TIMEOUT_MS, Canceller, type CancellerDeps } from "./canceller";
export { RecentIds, type RecentIdsOptions } from "./recentIds";
