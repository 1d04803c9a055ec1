/** Public surface of the kill switches (README, "Kill switches"): the board every process keeps, the planner's claim filter and call gate, intake's control. */

export { processSwitchBoard, SwitchBoard, SWITCH_REFRESH_MS, type SwitchBoardDeps, type SwitchBoardOptions, type SwitchTransition } from "./board";
export { claimsHonouringSwitches } from "./claims";
export { LIFT_WAKE_LIMIT, SwitchControl, type SwitchControlDeps } from "./control";
export { SwitchGate, type SwitchGateDeps } from "./gate";
export { SWITCH_CHANGED_EVENT } from "../contracts";
