/** The capacity planner's model (`clawfleet plan`): pure functions of a load and its limits. */
export { LIMIT_KINDS, planCapacity, type CapacityPlan, type LimitKind, type LimitReport, type LimitVerdict, type PlanInput, type TokenPrice } from "./plan";
export { erlangC, md1Wait, mmcWait } from "./queueing";
export { compareVerify, verifySetup, type VerifyComparison, type VerifyMeasurement, type VerifyRow, type VerifySetup } from "./verify";
