/**
 * The inventory the example's MCP server answers from: a few items, their stock
 * in three warehouses, and the deliveries on their way. Fixed, so every run of
 * the example gives the same answers.
 */
export const WAREHOUSES = ["lyon", "porto", "gdansk"];

export const ITEMS = [
  { sku: "SKU-1001", name: "Road running shoe", category: "footwear" },
  { sku: "SKU-1002", name: "Trail running shoe", category: "footwear" },
  { sku: "SKU-2001", name: "Merino base layer", category: "apparel" },
  { sku: "SKU-3001", name: "Headlamp 400 lm", category: "equipment" },
];

/** Units on hand, by SKU and warehouse. */
export const STOCK = {
  "SKU-1001": { lyon: 42, porto: 7, gdansk: 0 },
  "SKU-1002": { lyon: 0, porto: 12, gdansk: 3 },
  "SKU-2001": { lyon: 18, porto: 0, gdansk: 25 },
  "SKU-3001": { lyon: 5, porto: 5, gdansk: 5 },
};

/** Deliveries under way, by SKU and warehouse. */
export const INBOUND = {
  "SKU-1001": { gdansk: { units: 60, eta: "2025-03-18" } },
  "SKU-1002": { lyon: { units: 120, eta: "2025-03-14" } },
  "SKU-2001": { porto: { units: 40, eta: "2025-03-21" } },
};
