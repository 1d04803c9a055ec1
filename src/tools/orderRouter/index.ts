export { createOrderRouterTools, registerOrderRouterTools } from "./tools";
export { OrderRoutes, confirmationFor, isConnectionError, type Queryable, type RouteConfirmation, type RouteRequest } from "./backend";
export {
  REGIONS,
  SKUS,
  checkStock,
  expectedRouting,
  findOrder,
  findWarehouse,
  orderIds,
  stockOf,
  warehousesIn,
  type ExpectedRouting,
  type InventoryCheck,
  type Order,
  type OrderItem,
  type Region,
  type Warehouse,
} from "./data";
