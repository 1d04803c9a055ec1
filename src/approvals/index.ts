/** Approval gates: the planner's gate on a call (gate.ts) and the operators' side, run by intake (control.ts). */
export { awaitingApproval, gateOf, needsApproval, rejectedResult, type Gate } from "./gate";
export { ApprovalControl, EXPIRE_BATCH, type ApprovalControlDeps } from "./control";
