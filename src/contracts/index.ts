/**
 * Every shape that crosses a module or process boundary: REST bodies and
 * answers, broker params, wake-ups and the store's records. Each is a zod
 * schema and its TypeScript type is inferred from it, so the validator and the
 * type cannot drift apart. Import from here, not from the files behind it;
 * the REST API's OpenAPI document, built from these, is `./openapi`.
 */
export * from "./task";
export * from "./budgets";
export * from "./checkpoint";
export * from "./llm";
export * from "./tools";
export * from "./wakeup";
export * from "./api";
export * from "./store";
export * from "./events";
export * from "./agents";
export * from "./keys";
export * from "./rollout";
export * from "./canaryJudge";
export * from "./taskList";
export * from "./cancel";
export * from "./approvals";
export * from "./switches";
export * from "./webhooks";
export * from "./dashboard";
export { parseCallParams, parseParams, typedParams, validatesAsIs } from "./parse";
