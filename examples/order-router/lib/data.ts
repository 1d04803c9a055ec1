/**
 * The order-router's offline world: orders ORD-1000…ORD-1999, the warehouses of
 * each region (nearest first) and their stock. Everything is generated from fixed
 * seeds, so every process, test and benchmark sees the same data. Stock is a
 * snapshot: routing does not consume it, so an order's right answer never changes.
 *
 * The stock levels are tuned so that most orders can be filled by the nearest
 * warehouse, a good share only by the 2nd or 3rd nearest, and a few by none.
 */

export const REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"] as const;
export type Region = (typeof REGIONS)[number];

export interface Warehouse {
  warehouse_id: string;
  name: string;
  city: string;
  region: Region;
  distance_km: number;
}

export interface OrderItem {
  sku: string;
  quantity: number;
}

export interface Order {
  order_id: string;
  customer: string;
  region: Region;
  items: OrderItem[];
  placed_at: string;
}

export interface InventoryCheck {
  warehouse_id: string;
  can_fill: boolean;
  shortfall: Array<{ sku: string; missing: number }>;
}

export interface ExpectedRouting {
  order_id: string;
  routed: boolean;
  warehouse_id: string | null;
  /** Why a correct agent does not route the order; null when it does. */
  reason: "order_not_found" | "no_warehouse_can_fill" | null;
}

export const FIRST_ORDER = 1000;
export const ORDER_COUNT = 1000;
const SKU_COUNT = 40;
const ORDER_SEED = 0x0c1a_f1ee;
const STOCK_SEED = 0x570c_4a11;
/** Share of (warehouse, SKU) pairs that are out of stock, or nearly so. */
const OUT_OF_STOCK = 0.1;
const LOW_STOCK = 0.16;

/** Nearest first within each region. */
const WAREHOUSES: readonly Warehouse[] = (
  [
    ["WH-DUB", "Dublin Fulfilment", "Dublin", "eu-west", 12],
    ["WH-LON", "London Park Royal", "London", "eu-west", 465],
    ["WH-PAR", "Paris Gennevilliers", "Paris", "eu-west", 780],
    ["WH-MAD", "Madrid Coslada", "Madrid", "eu-west", 1450],
    ["WH-FRA", "Frankfurt Airport Hub", "Frankfurt", "eu-central", 18],
    ["WH-MUC", "Munich Nord", "Munich", "eu-central", 305],
    ["WH-VIE", "Vienna Donaustadt", "Vienna", "eu-central", 600],
    ["WH-NYC", "Newark Cross-Dock", "Newark", "us-east", 15],
    ["WH-PHL", "Philadelphia South", "Philadelphia", "us-east", 140],
    ["WH-CHI", "Chicago Joliet", "Joliet", "us-east", 1150],
    ["WH-ATL", "Atlanta Fulton", "Atlanta", "us-east", 1200],
    ["WH-SFO", "Oakland Bay", "Oakland", "us-west", 20],
    ["WH-LAX", "Ontario Inland", "Ontario", "us-west", 560],
    ["WH-SEA", "Kent Valley", "Kent", "us-west", 1100],
    ["WH-BOM", "Bhiwandi Logistics Park", "Bhiwandi", "ap-south", 25],
    ["WH-PNQ", "Pune Chakan", "Pune", "ap-south", 150],
    ["WH-BLR", "Bengaluru Hoskote", "Hoskote", "ap-south", 980],
    ["WH-DEL", "Delhi Kundli", "Kundli", "ap-south", 1400],
  ] as const
).map(([warehouse_id, name, city, region, distance_km]) => ({ warehouse_id, name, city, region, distance_km }));

const FIRST_NAMES = ["Ada", "Bruno", "Chen", "Dara", "Elif", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena", "Mateo", "Nia", "Omar", "Priya"];
const LAST_NAMES = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Kowalski", "Haddad", "Ferreira", "Novak", "Sato", "Byrne", "Rossi", "Iyer"];

/** Mulberry32: small, fast and good enough for fixtures. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

function pick<T>(rand: () => number, list: readonly T[]): T {
  const item = list[Math.floor(rand() * list.length)];
  if (item === undefined) throw new RangeError("pick from an empty list");
  return item;
}

const int = (rand: () => number, min: number, max: number) => min + Math.floor(rand() * (max - min + 1));
const skuOf = (n: number) => `SKU-${String(1001 + n)}`;

export const SKUS: readonly string[] = Array.from({ length: SKU_COUNT }, (_, i) => skuOf(i));

interface World {
  orders: Map<string, Order>;
  stock: Map<string, number>;
}

let world: World | undefined;

function build(): World {
  const orders = new Map<string, Order>();
  const rand = seeded(ORDER_SEED);
  const placedFrom = Date.UTC(2025, 5, 1);
  for (let n = 0; n < ORDER_COUNT; n++) {
    const order_id = `ORD-${FIRST_ORDER + n}`;
    const skus = new Set<string>();
    const lines = int(rand, 1, 3);
    while (skus.size < lines) skus.add(pick(rand, SKUS));
    orders.set(order_id, {
      order_id,
      customer: `${pick(rand, FIRST_NAMES)} ${pick(rand, LAST_NAMES)}`,
      region: pick(rand, REGIONS),
      items: [...skus].map((sku) => ({ sku, quantity: int(rand, 1, 5) })),
      placed_at: new Date(placedFrom + n * 37 * 60_000).toISOString(),
    });
  }

  const stock = new Map<string, number>();
  const srand = seeded(STOCK_SEED);
  for (const w of WAREHOUSES)
    for (const sku of SKUS) {
      const r = srand();
      const level = r < OUT_OF_STOCK ? 0 : r < OUT_OF_STOCK + LOW_STOCK ? int(srand, 1, 4) : int(srand, 5, 60);
      stock.set(`${w.warehouse_id}/${sku}`, level);
    }
  return { orders, stock };
}

function theWorld(): World {
  return (world ??= build());
}

export function orderIds(): string[] {
  return [...theWorld().orders.keys()];
}

export function findOrder(orderId: string): Order | undefined {
  const order = theWorld().orders.get(orderId);
  return order && structuredClone(order);
}

export function warehousesIn(region: Region): Warehouse[] {
  return WAREHOUSES.filter((w) => w.region === region).map((w) => ({ ...w }));
}

export function findWarehouse(warehouseId: string): Warehouse | undefined {
  const w = WAREHOUSES.find((x) => x.warehouse_id === warehouseId);
  return w && { ...w };
}

/** Units of `sku` on hand at the warehouse; 0 for SKUs it does not carry. */
export function stockOf(warehouseId: string, sku: string): number {
  return theWorld().stock.get(`${warehouseId}/${sku}`) ?? 0;
}

export function checkStock(warehouseId: string, items: readonly OrderItem[]): InventoryCheck {
  // The same SKU on several lines adds up.
  const wanted = new Map<string, number>();
  for (const { sku, quantity } of items) wanted.set(sku, (wanted.get(sku) ?? 0) + quantity);
  const shortfall = [...wanted].flatMap(([sku, quantity]) => {
    const missing = quantity - stockOf(warehouseId, sku);
    return missing > 0 ? [{ sku, missing }] : [];
  });
  return { warehouse_id: warehouseId, can_fill: shortfall.length === 0, shortfall };
}

/** What a correct agent decides: the nearest warehouse of the order's region that can fill every line. */
export function expectedRouting(orderId: string): ExpectedRouting {
  const order = theWorld().orders.get(orderId);
  if (!order) return { order_id: orderId, routed: false, warehouse_id: null, reason: "order_not_found" };
  const w = warehousesIn(order.region).find((x) => checkStock(x.warehouse_id, order.items).can_fill);
  return w
    ? { order_id: orderId, routed: true, warehouse_id: w.warehouse_id, reason: null }
    : { order_id: orderId, routed: false, warehouse_id: null, reason: "no_warehouse_can_fill" };
}
