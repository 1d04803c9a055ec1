/** Public surface of the simulated Anthropic model. */
export { startSimServer, DEFAULT_POLICIES, type SimServer } from "./server";
export { SimOptionsSchema, type SimOptions, type ResolvedSimOptions } from "./options";
export type { SimStats } from "./stats";
export { RequestLog, turnOf, DEFAULT_REQUEST_LOG_LIMIT, type SimRequestRecord } from "./requestLog";
export {
  offersTools,
  pastToolCalls,
  firstUserText,
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
export { orderRouterPolicy, orderRouterRoute, orderRouterClassifyPolicy, orderRouterClassifyRoute, isSimpleOrder } from "./policies/orderRouter";
export { genericPolicy, genericRoute } from "./policies/generic";
export { runSimCommand, parseSimArgs, SIM_USAGE, type SimCommandIo } from "./cli";
