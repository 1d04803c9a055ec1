/**
 * The simulated model's script for the order-router agent, loaded with
 * `CLAWFLEET_SIM_POLICIES` or `clawfleet sim --policies` (without it, the sim
 * plays the agent with its generic policy). Every turn is re-derived from the
 * conversation: which tools were called, with what results. That makes the
 * policy stateless, so a resumed task (whose conversation is replayed from
 * checkpoints) continues exactly where it stopped.
 *
 * Failure handling: a read-only tool that fails is retried once, then the task
 * ends unrouted; `route_order` is never retried from here, because a second call
 * gets a new idempotency key and could route the order twice.
 */
import {
  firstUserText,
  offersTools,
  pastToolCalls,
  textTurn,
  toolTurn,
  type PastToolCall,
  type PolicyRequest,
  type PolicyRoute,
  type SimTurn,
} from "clawfleet";
import { checkStock, findOrder, warehousesIn } from "../lib/data";

const ORDER_ID = /ORD-\d+/;
/** Warehouses checked per turn, nearest first. */
const CHECK_BATCH = 3;
const READ_ATTEMPTS = 2;
/** Test directive in a system prompt: look the order up twice, the same call both times (duplicate-call detection). */
const DOUBLE_CHECK_DIRECTIVE = "[sim: double-check-lookup]";
/**
 * An instruction a prompt may give: "Check inventory N times" (N 1-9, any case). Each warehouse's stock is then
 * checked N times with the same input before the policy goes on, so a prompt change alone can multiply a tool's
 * calls, as a careless edit of a real prompt can: what a canary's judge is there to catch.
 */
const REPEAT_CHECKS = /\bcheck[ _]inventory ([1-9]) times\b/i;

/** How often the prompt asks for each inventory check: 1 unless it says "Check inventory N times". */
export function inventoryChecksAsked(req: PolicyRequest): number {
  return Number(REPEAT_CHECKS.exec(systemText(req))?.[1] ?? 1);
}

interface FinalAnswer {
  order_id: string | null;
  routed: boolean;
  warehouse_id: string | null;
  reason: string;
}

interface OrderView {
  region: string;
  items: Array<{ sku: string; quantity: number }>;
}

type Verdict = { kind: "fills" } | { kind: "short"; shortfall: Array<{ sku: string; missing: number }> } | { kind: "failed"; error: string };

function final(answer: FinalAnswer): SimTurn {
  return textTurn(JSON.stringify(answer));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The error a tool reported, for quoting in a reason. */
function errorText(call: PastToolCall): string {
  const text = call.result?.text ?? "no result";
  const parsed = parseJson(text);
  const msg = isRecord(parsed) && typeof parsed.error === "string" ? parsed.error : text;
  return msg.length > 200 ? `${msg.slice(0, 200)}…` : msg;
}

function failed(call: PastToolCall | undefined): boolean {
  return call !== undefined && (call.result === undefined || call.result.isError);
}

function parseOrder(text: string): OrderView | undefined {
  const v = parseJson(text);
  if (!isRecord(v) || typeof v.region !== "string" || !Array.isArray(v.items)) return undefined;
  const items: OrderView["items"] = [];
  for (const it of v.items) {
    if (!isRecord(it) || typeof it.sku !== "string" || typeof it.quantity !== "number") return undefined;
    items.push({ sku: it.sku, quantity: it.quantity });
  }
  return { region: v.region, items };
}

function parseWarehouses(text: string): string[] | undefined {
  const v = parseJson(text);
  const list = Array.isArray(v) ? v : isRecord(v) && Array.isArray(v.warehouses) ? v.warehouses : undefined;
  if (!list) return undefined;
  const ids: string[] = [];
  for (const w of list) {
    const id = typeof w === "string" ? w : isRecord(w) && typeof w.warehouse_id === "string" ? w.warehouse_id : undefined;
    if (id === undefined) return undefined;
    ids.push(id);
  }
  return ids;
}

function verdictOf(call: PastToolCall): Verdict {
  if (failed(call)) return { kind: "failed", error: errorText(call) };
  const v = parseJson(call.result?.text ?? "");
  if (!isRecord(v) || typeof v.can_fill !== "boolean") return { kind: "failed", error: "unreadable inventory result" };
  if (v.can_fill) return { kind: "fills" };
  const shortfall = Array.isArray(v.shortfall)
    ? v.shortfall.flatMap((s) => (isRecord(s) && typeof s.sku === "string" && typeof s.missing === "number" ? [{ sku: s.sku, missing: s.missing }] : []))
    : [];
  return { kind: "short", shortfall };
}

function describeMiss(warehouse: string, verdict: Verdict): string {
  if (verdict.kind === "failed") return `${warehouse} could not be checked (${verdict.error})`;
  if (verdict.kind === "short" && verdict.shortfall.length > 0)
    return `${warehouse} is short of ${verdict.shortfall.map((s) => `${s.sku} (missing ${s.missing})`).join(", ")}`;
  return `${warehouse} cannot fill it`;
}

function items(order: OrderView): string {
  return `${order.items.length} item${order.items.length === 1 ? "" : "s"}`;
}

export function orderRouterPolicy(req: PolicyRequest): SimTurn {
  const orderId = ORDER_ID.exec(firstUserText(req.messages))?.[0];
  if (!orderId)
    return final({ order_id: null, routed: false, warehouse_id: null, reason: "no order id (ORD-<digits>) found in the request, so there is nothing to route" });
  const unrouted = (reason: string): SimTurn => final({ order_id: orderId, routed: false, warehouse_id: null, reason });

  const calls = pastToolCalls(req.messages);
  const callsOf = (name: string) => calls.filter((c) => c.name === name);

  // 1. The order.
  const lookups = callsOf("lookup_order");
  const lookup = lookups.at(-1);
  if (!lookup) return toolTurn(req, `Looking up order ${orderId} to find its region and items.`, [{ name: "lookup_order", input: { order_id: orderId } }]);
  const notFound = /not found/i.test(lookup.result?.text ?? "");
  if (failed(lookup)) {
    if (notFound) return unrouted(`order ${orderId} not found`);
    if (lookups.length < READ_ATTEMPTS)
      return toolTurn(req, `Looking up order ${orderId} failed (${errorText(lookup)}); trying once more.`, [
        { name: "lookup_order", input: { order_id: orderId } },
      ]);
    return unrouted(`could not look up order ${orderId}: ${errorText(lookup)}`);
  }
  const order = parseOrder(lookup.result?.text ?? "");
  if (!order) return unrouted(notFound ? `order ${orderId} not found` : `lookup_order returned no usable order for ${orderId}`);
  if (lookups.length === 1 && systemText(req).includes(DOUBLE_CHECK_DIRECTIVE))
    return toolTurn(req, `Double-checking order ${orderId} before routing it.`, [{ name: "lookup_order", input: { order_id: orderId } }]);

  // 2. The candidate warehouses, nearest first.
  const listings = callsOf("list_warehouses");
  const listing = listings.at(-1);
  const listInput = { region: order.region };
  if (!listing)
    return toolTurn(req, `Order ${orderId} ships to ${order.region}; listing the warehouses that serve it, nearest first.`, [
      { name: "list_warehouses", input: listInput },
    ]);
  if (failed(listing)) {
    if (listings.length < READ_ATTEMPTS)
      return toolTurn(req, `Listing warehouses for ${order.region} failed (${errorText(listing)}); trying once more.`, [
        { name: "list_warehouses", input: listInput },
      ]);
    return unrouted(`could not list warehouses for region ${order.region}: ${errorText(listing)}`);
  }
  const candidates = parseWarehouses(listing.result?.text ?? "");
  if (!candidates) return unrouted(`list_warehouses returned no usable list for region ${order.region}`);
  if (candidates.length === 0) return unrouted(`no warehouse serves region ${order.region}`);

  // 3. Inventory, a batch of the nearest unchecked warehouses per turn.
  const checksOf = (warehouse: string) => callsOf("check_inventory").filter((c) => c.input.warehouse_id === warehouse);
  const checkInput = (warehouse: string) => ({ warehouse_id: warehouse, items: order.items.map((i) => ({ sku: i.sku, quantity: i.quantity })) });
  const asked = inventoryChecksAsked(req);
  const misses: string[] = [];
  let chosen: string | undefined;
  for (let start = 0; start < candidates.length && chosen === undefined; start += CHECK_BATCH) {
    const batch = candidates.slice(start, start + CHECK_BATCH);
    const unchecked = batch.filter((w) => checksOf(w).length === 0);
    if (unchecked.length > 0) {
      const reason =
        start === 0
          ? `Order ${orderId} (${items(order)}) ships to ${order.region}; checking inventory in the nearest warehouses: ${unchecked.join(", ")}.`
          : `${misses.join("; ")}. Checking the next warehouses: ${unchecked.join(", ")}.`;
      return toolTurn(req, reason, unchecked.map((w) => ({ name: "check_inventory", input: checkInput(w) })));
    }
    const again = batch.filter((w) => {
      const checks = checksOf(w);
      return !failed(checks.at(-1)) && checks.length < asked;
    });
    if (again.length > 0)
      return toolTurn(
        req,
        `Checking inventory at ${again.join(", ")} again, as instructed (${asked} checks each).`,
        again.map((w) => ({ name: "check_inventory", input: checkInput(w) })),
      );
    const retry = batch.filter((w) => {
      const checks = checksOf(w);
      return failed(checks.at(-1)) && checks.filter(failed).length < READ_ATTEMPTS;
    });
    if (retry.length > 0)
      return toolTurn(
        req,
        `Inventory check failed at ${retry.join(", ")}; trying once more.`,
        retry.map((w) => ({ name: "check_inventory", input: checkInput(w) })),
      );
    for (const w of batch) {
      const last = checksOf(w).at(-1);
      const verdict: Verdict = last ? verdictOf(last) : { kind: "failed", error: "not checked" };
      if (verdict.kind === "fills") {
        chosen = w;
        break;
      }
      misses.push(describeMiss(w, verdict));
    }
  }
  if (chosen === undefined) return unrouted(`no warehouse in ${order.region} can fill order ${orderId}: ${misses.join("; ")}`);

  // 4. The side effect, once.
  const route = callsOf("route_order").at(-1);
  const why =
    misses.length === 0
      ? `${chosen} is the nearest warehouse that can fill all ${items(order)}`
      : `${misses.join("; ")}; ${chosen} is the nearest warehouse that can fill all ${items(order)}`;
  if (!route) return toolTurn(req, `${why}. Routing order ${orderId} there.`, [{ name: "route_order", input: { order_id: orderId, warehouse_id: chosen } }]);
  if (failed(route)) return unrouted(`routing to ${chosen} failed (${errorText(route)}); not retried, to avoid routing the order twice`);

  const confirmation = parseJson(route.result?.text ?? "");
  const routedTo = isRecord(confirmation) && typeof confirmation.warehouse_id === "string" ? confirmation.warehouse_id : chosen;
  const ref = isRecord(confirmation) && typeof confirmation.confirmation === "string" ? ` (confirmation ${confirmation.confirmation})` : "";
  return final({ order_id: orderId, routed: true, warehouse_id: routedTo, reason: `${why}; routed${ref}` });
}

export const orderRouterRoute: PolicyRoute = {
  name: "order-router",
  matches: (req) => offersTools(req, ["lookup_order", "route_order"]),
  policy: orderRouterPolicy,
};

/**
 * The classification step of the tiered order-router: a request without tools
 * whose system prompt asks for `{"complexity": …}`. The simulated model "knows"
 * the seeded world, so the label is deterministic: an order of one item that the
 * nearest warehouse of its region can fill is simple, and so is an order that
 * does not exist (nothing to reason about); any other order is complex.
 */
export function isSimpleOrder(orderId: string): boolean {
  const order = findOrder(orderId);
  if (!order) return true;
  const nearest = warehousesIn(order.region)[0];
  return order.items.length === 1 && nearest !== undefined && checkStock(nearest.warehouse_id, order.items).can_fill;
}

const systemText = (req: PolicyRequest): string =>
  req.system === undefined ? "" : typeof req.system === "string" ? req.system : req.system.map((b) => b.text).join("\n");

export function orderRouterClassifyPolicy(req: PolicyRequest): SimTurn {
  // The label the prompt offers first is the "simple" one.
  const simple = /"complexity":\s*"([^"]+)"/.exec(systemText(req))?.[1] ?? "simple";
  const orderId = ORDER_ID.exec(firstUserText(req.messages))?.[0];
  return textTurn(JSON.stringify({ complexity: orderId === undefined || isSimpleOrder(orderId) ? simple : "complex" }));
}

export const orderRouterClassifyRoute: PolicyRoute = {
  name: "order-router-classify",
  matches: (req) => (req.tools ?? []).length === 0 && /"complexity"/.test(systemText(req)) && /order/i.test(systemText(req)),
  policy: orderRouterClassifyPolicy,
};

/** What the simulated model loads from this module: the routing script and the classification step of the tiered variant. */
export const routes: PolicyRoute[] = [orderRouterRoute, orderRouterClassifyRoute];
