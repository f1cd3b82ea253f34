// The open orders card: every resting order of every strategy (limit, stop and
// stop-limit entries, a bracket's stop-loss and take-profit), with a Cancel button
// per order. Loaded with get_open_orders on each (re)connection and resync, kept
// live by the order_* messages: added on order_accepted, changed on order_replaced and
// order_partially_filled (partial fills: what rests and what its parts filled so far),
// removed on order_triggered, order_cancelled and order_expired (docs/orders.md).
// The daemon's reply to get_open_orders is the committed state when it answers, and
// the messages after it are what changed since, so the reply replaces the table.
//
// What it needs of the page comes in through startOpenOrders: the service, the
// confirmation dialog and the price format of the dashboard.

const ORDERS_LIMIT = 500; // rows shown; the daemon holds at most what its strategies placed
const REMOVING = new Set(["order_triggered", "order_cancelled", "order_expired"]);
const KEEPING = new Set(["order_accepted", "order_replaced", "order_partially_filled"]);
const PURPOSES = { signal: "entry", stop_loss: "stop-loss", take_profit: "take-profit" };

const $ = (id) => document.getElementById(id);

/**
 * @param service the page's WebSocketService
 * @param {object} page confirmAction({title, text, confirm}) -> Promise<{ok}>, and
 *   price(value, symbol) -> text
 */
export function startOpenOrders(service, page) {
  const card = {
    service,
    page,
    orders: new Map(), // orderId -> RestingOrder
    connected: false,
    cancelling: new Set(), // order ids with a cancel_order in flight
    loads: 0, // the latest get_open_orders asked; an older reply is dropped
  };
  service.getOrderEvents().subscribe((message) => onOrderEvent(card, message));
  service.connection$.subscribe((status) => onConnection(card, status));
  service.resync$.subscribe((notice) => {
    if (notice.server === "orchestrator") loadOpenOrders(card);
  });
  $("order-rows").addEventListener("click", (event) => onCancelClick(card, event));
  render(card);
  return card;
}

function onConnection(card, status) {
  const connected = status.servers.orchestrator.state === "connected";
  if (connected === card.connected) return;
  card.connected = connected;
  if (connected) loadOpenOrders(card);
  render(card);
}

async function loadOpenOrders(card) {
  const load = ++card.loads;
  try {
    const orders = await card.service.getOpenOrders();
    if (load !== card.loads) return;
    card.orders = new Map(orders.slice(0, ORDERS_LIMIT).map((order) => [order.orderId, order]));
    showError(null);
  } catch (error) {
    if (load === card.loads) showError(`could not load the open orders: ${error.message}`);
  }
  render(card);
}

function onOrderEvent(card, message) {
  const order = message.data;
  if (REMOVING.has(message.type)) {
    card.orders.delete(order.orderId);
  } else if (KEEPING.has(message.type)) {
    if (card.orders.size < ORDERS_LIMIT || card.orders.has(order.orderId)) {
      const { timestamp, previous, filledQuantity, fillPrice, ...terms } = order;
      // A message carries this part only: the parts before are the card's (or the
      // open_orders reply's, after a reconnection).
      const before = card.orders.get(order.orderId)?.filled ?? 0;
      card.orders.set(order.orderId, { ...terms, filled: before + (filledQuantity ?? 0) });
    }
  }
  render(card);
}

// ---------------------------------------------------------------- cancel

async function onCancelClick(card, event) {
  const button = event.target.closest("button[data-action=cancel-order]");
  if (!button) return;
  const orderId = button.closest("tr").dataset.orderId;
  const order = card.orders.get(orderId);
  if (!order) return;
  const { ok } = await card.page.confirmAction({
    title: `Cancel ${orderId}?`,
    text: `${describe(order, card.page.price)} of ${order.strategyId} stops resting`
      + (order.purpose === "signal" ? "." : "; the position it protects keeps its other exit."),
    confirm: "Cancel the order",
  });
  if (!ok) return;
  card.cancelling.add(orderId);
  render(card);
  try {
    await card.service.cancelOrder(orderId);
    showError(null);
  } catch (error) {
    showError(`cancel ${orderId}: ${error.code ?? "error"}: ${error.message}`);
  } finally {
    card.cancelling.delete(orderId);
    render(card);
  }
}

function describe(order, price) {
  const prices = [
    order.limitPrice === null ? null : `limit ${price(order.limitPrice, order.symbol)}`,
    order.stopPrice === null ? null : `stop ${price(order.stopPrice, order.symbol)}`,
  ].filter(Boolean).join(", ");
  return `The ${PURPOSES[order.purpose] ?? order.purpose} ${order.orderType} ${order.side} `
    + `${order.quantity} ${order.symbol} (${prices})`;
}

function showError(text) {
  const element = $("orders-error");
  element.hidden = !text;
  element.textContent = text ?? "";
}

// ---------------------------------------------------------------- the table

function render(card) {
  const panel = $("open-orders");
  panel.dataset.stale = String(!card.connected);
  panel.dataset.count = String(card.orders.size);
  $("order-count").textContent = String(card.orders.size);
  const orders = [...card.orders.values()].sort(
    (a, b) => Date.parse(a.placedAt) - Date.parse(b.placedAt) || a.orderId.localeCompare(b.orderId),
  );
  const body = $("order-rows");
  const rows = orders.map((order) => renderRow(card, order, findRow(body, order.orderId) ?? newRow(order)));
  body.replaceChildren(...rows);
  $("orders-empty").hidden = orders.length > 0;
}

function findRow(body, orderId) {
  return [...body.children].find((row) => row.dataset.orderId === orderId);
}

const CELLS = [
  ["strategy", ""], ["symbol", ""], ["type", ""], ["side", ""], ["quantity", "num"],
  ["limit", "num"], ["stop", "num"], ["stop-loss", "num"], ["take-profit", "num"],
  ["tif", ""], ["placed", ""],
];

function newRow(order) {
  const row = document.createElement("tr");
  row.dataset.testid = "open-order";
  row.dataset.orderId = order.orderId;
  for (const [name, className] of CELLS) {
    const cell = document.createElement("td");
    cell.dataset.testid = `order-${name}`;
    cell.className = className;
    row.append(cell);
  }
  const actions = document.createElement("td");
  actions.className = "order-actions";
  const button = document.createElement("button");
  Object.assign(button, { type: "button", className: "danger", textContent: "Cancel" });
  button.dataset.action = "cancel-order";
  button.dataset.testid = "cancel-order";
  actions.append(button);
  row.append(actions);
  return row;
}

// What rests, and with partial fills what its parts filled: "6 of 10 (4 filled)".
function quantityText(order) {
  const filled = order.filled ?? 0;
  if (!(filled > 0)) return units(order.quantity);
  return `${units(order.quantity)} of ${units(order.quantity + filled)} (${units(filled)} filled)`;
}

// A sum of parts without float dust: 0.1 + 0.2 shows 0.3.
function units(value) {
  return String(Number(value.toPrecision(12)));
}

function renderRow(card, order, row) {
  const price = (value) => (value === null || value === undefined ? "—" : card.page.price(value, order.symbol));
  const trailing = order.trailing
    ? ` (trails ${order.trailing.fraction ? `${order.trailing.amount * 100} %` : order.trailing.amount})`
    : "";
  const texts = {
    strategy: order.strategyId,
    symbol: order.symbol,
    type: `${order.orderType} · ${PURPOSES[order.purpose] ?? order.purpose}`,
    side: order.side,
    quantity: quantityText(order),
    limit: price(order.limitPrice),
    stop: price(order.stopPrice) + (order.purpose === "stop_loss" ? trailing : ""),
    "stop-loss": price(order.stopLoss) + (order.purpose === "signal" ? trailing : ""),
    "take-profit": price(order.takeProfit),
    tif: order.timeInForce,
    placed: new Date(order.placedAt).toLocaleString(),
  };
  for (const [name, text] of Object.entries(texts)) {
    const cell = row.querySelector(`[data-testid=order-${name}]`);
    if (cell.textContent !== text) cell.textContent = text;
  }
  row.title = order.parentId ? `${order.orderId}, an exit of ${order.parentId}` : order.orderId;
  row.dataset.purpose = order.purpose;
  row.dataset.remaining = String(order.quantity);
  row.dataset.filled = String(order.filled ?? 0);
  const button = row.querySelector("[data-action=cancel-order]");
  button.disabled = !card.connected || card.cancelling.has(order.orderId);
  button.title = card.connected ? `cancel ${order.orderId}` : "the daemon does not answer";
  return row;
}
