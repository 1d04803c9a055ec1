/** Public surface of the simulated Anthropic model. */
export { startSimServer, type SimServer } from "./server";
export { SimOptionsSchema, type SimOptions, type ResolvedSimOptions } from "./options";
export type { SimStats } from "./stats";
export { RequestLog, turnOf, DEFAULT_REQUEST_LOG_LIMIT, type SimRequestRecord } from "./requestLog";
export {
  offersTools,
  pastToolCalls,
  firstUserText,
  textOf,
  toolResultText,
  textTurn,
  toolTurn,
  type PastToolCall,
  type PolicyRequest,
  type PolicyRoute,
  type SimContentBlock,
  type SimPolicy,
  type SimStopReason,
  type SimTurn,
} from "./policy";
export { genericPolicy, genericRoute } from "./policies/generic";
export { inputFromSchema, valueFromSchema } from "./schemaInput";
export { samplePattern } from "./patternSample";
export { loadSimPolicies } from "./plugins";
export { runSimCommand, parseSimArgs, SIM_USAGE, type SimArgs, type SimCommandIo } from "./cli";
