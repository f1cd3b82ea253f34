// The dashboard: strategies with status, symbols, positions and P&L and their
// start / pause / stop buttons; a live feed of signals and trades; a price
// chart of a chosen symbol with its fills marked; the execution status and the
// kill switch of the risk guardian; a connection indicator. Everything goes
// through the WebSocketService; nothing here talks to a socket itself.
//
// Page parameters: ?symbol=MSFT picks the chart's symbol, ?backoffMaxMs=1000
// caps the reconnection delay; #token=... gives the token when the daemon
// requires one (kept in sessionStorage, removed from the address bar).

import { WebSocketService, serverLabel } from "./websocket-service.js";
import { startOpenOrders } from "./open-orders.js";
import { startBacktests } from "./backtests.js";
import { startSweeps } from "./sweeps.js";

const FEED_LIMIT = 200;
const ACTIVITY_LIMIT = 100; // trades and signals from the journal on load
const SEEN_LIMIT = 5000; // ids of trades and signals shown, to drop what comes twice
const CHART_BARS_LIMIT = 500;
const RESOLUTION_SECONDS = { "1s": 1, "5s": 5, "15s": 15, "30s": 30, "1m": 60, "5m": 300, "15m": 900, "1h": 3600 };
const TRADE_MARKERS_LIMIT = 1000;
const CLOSED_TRADES_LIMIT = 200; // rows of the closed-trades table
const FILLS_PER_POSITION = 500; // fills kept per strategy and symbol to pair into round trips
const LINE_POINTS_LIMIT = 1000; // points of each indicator line on the chart
const LINE_COLORS = ["#58a6ff", "#d29922", "#bc8cff", "#39c5cf", "#f778ba"];
const QUANTITY_EPSILON = 1e-9;
const RISK_POLL_MS = 2000;
const STATUS_ORDER = ["ACTIVE", "PAUSED", "ERROR", "STOPPED"];

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

// A render that every fill would redo in full (the closed trades, the chart's
// markers) runs once per frame: a burst of fills, a fast strategy's or a resume's
// replay after a restart, costs one render, not one per fill (per fill, a replay
// of a few thousand trades held the page for seconds).
const renderingSoon = new Set();
function renderSoon(render) {
  if (renderingSoon.has(render)) return;
  renderingSoon.add(render);
  requestAnimationFrame(() => {
    renderingSoon.delete(render);
    render();
  });
}

const state = {
  service: null,
  config: null,
  catalog: new Map(), // id -> StrategyEntry (+ error)
  priceDecimals: new Map(), // symbol -> decimals of its price grid (get_instruments)
  risk: null, // RiskStatus
  lastRisk: new Map(), // strategyId -> StrategyRisk, kept after it leaves risk_status
  busy: new Set(), // strategy ids with a command in flight
  connected: false,
  execution: null,
  counts: { signals: 0, trades: 0 },
  lastUpdate: null, // when a server last said anything (ms)
  seen: new Set(), // ids of the trades and signals shown (history and live)
  chart: { symbol: null, resolution: null, seconds: 1, bars: new Map(), fills: [] },
  positionFills: new Map(), // "strategy|symbol" -> its fills in time order, paired into round trips
  orderParts: new Map(), // orderId -> quantity its parts filled so far (partial fills), until its last
  lines: { strategyId: null, chosen: false, series: new Map(), points: new Map() },
};

// ---------------------------------------------------------------- start-up

async function main() {
  const config = await (await fetch("/static/config.json", { cache: "no-store" })).json();
  const token = takeToken();
  if (config.authRequired && !token) {
    askForToken(config);
    return;
  }
  start(config, token);
}

function takeToken() {
  const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("orchestrator-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("orchestrator-token");
}

function askForToken(config, refused = false) {
  const form = $("token-form");
  form.hidden = false;
  form.dataset.refused = String(refused);
  if (refused) $("token-prompt").textContent = "The daemon refused the token; enter another";
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem("orchestrator-token", token);
    form.hidden = true;
    if (refused) location.reload(); // a fresh page with the new token
    else start(config, token);
  });
}

function serverUrls(config) {
  const scheme = config.tls || location.protocol === "https:" ? "wss:" : "ws:";
  const { orchestrator, market_data: market, risk } = config.servers;
  return {
    orchestratorUrl: `${scheme}//${location.host}${orchestrator.path}`,
    marketDataUrl: `${scheme}//${location.hostname}:${market.port}${market.path}`,
    riskUrl: `${scheme}//${location.hostname}:${risk.port}${risk.path}`,
  };
}

function backoffFromParams() {
  const backoff = {};
  const max = Number(params.get("backoffMaxMs"));
  if (max > 0) backoff.maxMs = max;
  const initial = Number(params.get("backoffInitialMs"));
  if (initial > 0) backoff.initialMs = initial;
  return backoff;
}

function start(config, token) {
  state.config = config;
  const service = new WebSocketService({ ...serverUrls(config), token, backoff: backoffFromParams() });
  state.service = service;
  window.orchestratorService = service; // for the console (and the browser test)

  service.connection$.subscribe(onConnection);
  service.executionStatus$.subscribe(onExecutionStatus);
  service.getStrategyUpdates().subscribe(onUpdate);
  service.getStrategySignals().subscribe(onSignal);
  service.getStrategyTrades().subscribe(onTrade);
  service.getRiskEvents().subscribe(onRiskEvent);
  service.resync$.subscribe((notice) => {
    addFeed("status", `${serverLabel(notice.server)}: fresh snapshot (${notice.reason})`);
    if (notice.server === "orchestrator") {
      refreshCatalog();
      chooseLines(state.lines.strategyId); // the lines of the bars closed while away
    }
  });

  setupChart(config.symbols);
  service.getMessages("orchestrator").subscribe(onIndicators);
  $("chart-lines").addEventListener("change", () => {
    state.lines.chosen = true;
    chooseLines($("chart-lines").value || null);
  });
  setupStartDialog(config);
  startOpenOrders(service, { confirmAction, price });
  startBacktests(service, config, token);
  startSweeps(service, config, token, { confirmAction });
  $("kill-switch").addEventListener("click", onKillSwitch);
  $("strategy-rows").addEventListener("click", onStrategyAction);
  setInterval(refreshRisk, RISK_POLL_MS);
  service.getMessages().subscribe(() => (state.lastUpdate = Date.now()));
  setInterval(renderLastUpdate, 1000);
}

// ---------------------------------------------------------------- connection

const CONNECTION_LABELS = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
};

let previousServers = {};

function onConnection(status) {
  const indicator = $("connection");
  indicator.dataset.state = status.state;
  let label = CONNECTION_LABELS[status.state];
  const retrying = Object.values(status.servers).find((s) => s.state === "reconnecting");
  if (retrying) label += ` attempt ${retrying.attempt}, next in ${(retrying.retryInMs / 1000).toFixed(1)} s`;
  indicator.querySelector(".label").textContent = label;
  indicator.title = Object.entries(status.servers)
    .map(([name, s]) => `${serverLabel(name)}: ${s.state} (${s.url})`)
    .join("\n");

  const orchestrator = status.servers.orchestrator;
  if (orchestrator.state === "closed" && orchestrator.lastClose?.code === 1008) {
    indicator.querySelector(".label").textContent = "Token refused";
    sessionStorage.removeItem("orchestrator-token");
    if ($("token-form").hidden) askForToken(state.config, true);
  }

  const wasConnected = state.connected;
  state.connected = status.connected;
  for (const [name, server] of Object.entries(status.servers)) {
    const before = previousServers[name];
    if (server.state === "connected" && before !== "connected") {
      if (name === "orchestrator") {
        refreshCatalog();
        loadRecentActivity();
      }
      if (name === "risk") refreshRisk();
      if (name === "marketData" && before !== undefined) loadChartHistory();
    }
    if (before === "connected" && server.state !== "connected") {
      addFeed("status", `lost the ${serverLabel(name)} connection; reconnecting`);
    }
  }
  previousServers = Object.fromEntries(Object.entries(status.servers).map(([n, s]) => [n, s.state]));
  renderReachability(status.servers);
  renderLastUpdate();
  if (wasConnected !== state.connected) renderStrategies();
  renderKillSwitch();
}

// What the page shows while a server is away is what it last heard, and says so:
// execution UNKNOWN (not a green RUNNING), statuses and P&L marked "last known",
// the figures, the chart and the last price greyed (dashboard.css) per server away.
function renderReachability(servers) {
  const orchestratorAway = servers.orchestrator.state !== "connected";
  const riskAway = servers.risk.state !== "connected";
  document.body.dataset.orchestrator = orchestratorAway ? "away" : "connected";
  document.body.dataset.risk = riskAway ? "away" : "connected";
  document.body.dataset.marketData = servers.marketData.state !== "connected" ? "away" : "connected";
  const element = $("execution-status");
  if (orchestratorAway && state.execution !== null) {
    element.textContent = "UNKNOWN";
    element.dataset.status = "UNKNOWN";
    element.title = `last known: ${state.execution}; the daemon does not answer`;
  } else if (!orchestratorAway && element.dataset.status === "UNKNOWN") {
    element.textContent = state.execution;
    element.dataset.status = state.execution;
    element.title = "";
  }
}

// While a server is away, how old what the page shows is ("last update 12 s ago").
function renderLastUpdate() {
  const element = $("last-update");
  const away = document.body.dataset.orchestrator === "away" || document.body.dataset.risk === "away";
  element.hidden = !away || state.lastUpdate === null;
  if (element.hidden) return;
  const seconds = Math.max(0, Math.round((Date.now() - state.lastUpdate) / 1000));
  element.textContent = `last update ${seconds} s ago`;
}

// ---------------------------------------------------------------- strategies

async function refreshCatalog() {
  try {
    const [entries, instruments] = await Promise.all([
      state.service.getStrategies(),
      state.service.getInstruments(),
    ]);
    for (const { symbol, priceDecimals } of instruments) state.priceDecimals.set(symbol, priceDecimals);
    for (const entry of entries) state.catalog.set(entry.id, { ...entry });
    renderStrategies();
  } catch (error) {
    showCommandError(`could not load the strategies: ${error.message}`);
  }
}

function onUpdate(update) {
  const { type, data } = update;
  if (type === "strategy_status_list") {
    const listed = new Set(data.map((entry) => entry.id));
    for (const entry of data) state.catalog.set(entry.id, { ...state.catalog.get(entry.id), ...entry });
    for (const [id, entry] of state.catalog) if (!listed.has(id)) entry.status = "STOPPED";
  } else {
    const entry = state.catalog.get(data.strategyId) ?? {
      id: data.strategyId,
      name: data.name,
      symbols: [],
      positions: [],
    };
    state.catalog.set(entry.id, entry);
    entry.name = data.name;
    entry.error = null;
    if (type === "strategy_started") {
      entry.status = "ACTIVE";
      entry.symbols = data.symbols;
      addFeed("status", `${data.name} started on ${data.symbols.join(", ")}`, data.strategyId);
    } else if (type === "strategy_paused") {
      entry.status = "PAUSED";
      addFeed("status", `${data.name} paused`, data.strategyId);
    } else if (type === "strategy_stopped") {
      entry.status = "STOPPED";
      addFeed("status", `${data.name} stopped`, data.strategyId);
    } else if (type === "strategy_error") {
      entry.status = "ERROR";
      entry.error = data.error;
      addFeed("error", `${data.name} failed: ${data.error}`, data.strategyId);
    }
  }
  renderStrategies();
}

function renderStrategies() {
  const body = $("strategy-rows");
  const entries = [...state.catalog.values()].sort(
    (a, b) => STATUS_ORDER.indexOf(a.status) - STATUS_ORDER.indexOf(b.status) || a.id.localeCompare(b.id),
  );
  const rows = entries.map((entry) => renderRow(entry, findRow(body, entry.id) ?? newRow(entry.id)));
  rows.forEach((row, index) => {
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] ?? null);
  });
  renderLineChoices();
}

function findRow(body, id) {
  return [...body.children].find((row) => row.dataset.strategyId === id);
}

function newRow(id) {
  const row = document.createElement("tr");
  row.dataset.testid = "strategy-row";
  row.dataset.strategyId = id;
  row.innerHTML = `
    <td class="name"><span class="strategy-name"></span><small class="strategy-id"></small></td>
    <td><span class="badge" data-testid="strategy-status"></span></td>
    <td data-testid="strategy-symbols"></td>
    <td data-testid="strategy-positions" class="positions"></td>
    <td data-testid="strategy-pnl-today" class="num pnl" data-label="Realized today"></td>
    <td data-testid="strategy-pnl-since-start" class="num pnl" data-label="Realized since start"></td>
    <td data-testid="strategy-pnl-unrealized" class="num pnl" data-label="Unrealized"></td>
    <td class="actions">
      <button type="button" data-action="start" data-testid="start">Start</button>
      <button type="button" data-action="pause" data-testid="pause">Pause</button>
      <button type="button" data-action="stop" data-testid="stop" class="danger">Stop</button>
    </td>`;
  return row;
}

function renderRow(entry, row) {
  row.dataset.status = entry.status;
  row.dataset.stale = String(!state.connected);
  row.querySelector(".strategy-name").textContent = entry.name;
  row.querySelector(".strategy-id").textContent = entry.id;
  const badge = row.querySelector(".badge");
  badge.textContent = entry.status;
  badge.className = `badge status-${entry.status}`;
  badge.title = state.connected ? entry.error ?? "" : "last known status: the daemon does not answer";
  row.querySelector("[data-testid=strategy-symbols]").textContent = entry.symbols.join(", ");

  const risk = state.lastRisk.get(entry.id);
  const positions = (risk ? risk.positions : entry.positions).filter((p) => p.quantity !== 0);
  row.querySelector("[data-testid=strategy-positions]").textContent = positions.length
    ? positions.map((p) => `${p.symbol} ${signed(p.quantity, 0)} @ ${price(p.entryPrice, p.symbol)}`).join(" · ")
    : "—";
  renderPnlCells(row, risk ?? entry);

  const busy = state.busy.has(entry.id) || !state.connected;
  const startButton = row.querySelector("[data-action=start]");
  startButton.textContent = entry.status === "PAUSED" ? "Resume" : "Start";
  startButton.disabled = busy || entry.status === "ACTIVE";
  row.querySelector("[data-action=pause]").disabled = busy || entry.status !== "ACTIVE";
  row.querySelector("[data-action=stop]").disabled = busy || entry.status === "STOPPED";
  return row;
}

// The three P&L figures of a strategy (README "P&L"), from the risk status or its entry.
const PNL_CELLS = {
  "strategy-pnl-today": "realizedPnlToday",
  "strategy-pnl-since-start": "realizedPnlSinceStart",
  "strategy-pnl-unrealized": "unrealizedPnl",
};

function renderPnlCells(row, figures) {
  for (const [testid, field] of Object.entries(PNL_CELLS)) {
    const cell = row.querySelector(`[data-testid=${testid}]`);
    const value = figures?.[field];
    const known = typeof value === "number";
    cell.textContent = known ? signed(value, 2) : "—";
    cell.dataset.value = known ? String(value) : "";
    cell.className = `num pnl ${known && value > 0 ? "gain" : known && value < 0 ? "loss" : ""}`;
  }
}

async function onStrategyAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.closest("tr").dataset.strategyId;
  const service = state.service;
  if (button.dataset.action === "start" && state.catalog.get(id)?.status === "STOPPED") {
    openStartDialog(id);
    return;
  }
  if (button.dataset.action === "stop") {
    const name = state.catalog.get(id)?.name ?? id;
    const { ok } = await confirmAction({
      title: `Stop ${name}?`,
      text: "Stopping closes its open positions at market and cancels its pending orders.",
      confirm: "Stop and close positions",
    });
    if (!ok) return;
  }
  const commands = {
    start: () => service.startStrategy(id),
    pause: () => service.pauseStrategy(id),
    stop: () => service.stopStrategy(id),
  };
  state.busy.add(id);
  renderStrategies();
  try {
    await commands[button.dataset.action]();
    showCommandError(null);
  } catch (error) {
    showCommandError(`${button.dataset.action} ${id}: ${error.message}`);
  } finally {
    state.busy.delete(id);
    renderStrategies();
  }
}

function showCommandError(text) {
  const element = $("command-error");
  element.hidden = !text;
  element.textContent = text ?? "";
}

// ---------------------------------------------------------------- feed

// ---------------------------------------------------------------- trades and signals

// The journal's last trades and signals, asked for on every (re)connection, after
// the snapshot: what was committed before the reply is in it, what comes later is
// live, and one that is both has the same id and is shown once.
async function loadRecentActivity() {
  try {
    const { trades, signals } = await state.service.getRecentActivity(ACTIVITY_LIMIT);
    for (const signal of signals) onSignal(signal);
    for (const trade of trades) onTrade(trade);
  } catch (error) {
    if (error.code !== "history_unavailable") showCommandError(`could not load the recent trades: ${error.message}`);
  }
}

function firstSight(id) {
  if (state.seen.has(id)) return false;
  state.seen.add(id);
  if (state.seen.size > SEEN_LIMIT) state.seen.delete(state.seen.values().next().value);
  return true;
}

function onSignal(signal) {
  if (!firstSight(signal.id)) return;
  state.counts.signals += 1;
  $("signal-count").textContent = state.counts.signals;
  const quantity = signal.quantity === null ? "" : ` ${signal.quantity}`;
  addFeed(
    "signal",
    `${signal.action}${quantity} ${signal.symbol} @ ${price(signal.price, signal.symbol)} · confidence ${signal.confidence.toFixed(2)}`,
    signal.strategyId,
    signal.timestamp,
  );
}

function onTrade(trade) {
  if (!firstSight(trade.id)) return;
  const part = trade.status === "FILLED" ? partOf(trade) : "";
  if (trade.status === "FILLED") addTradeRow(trade, part);
  state.counts.trades += 1;
  $("trade-count").textContent = state.counts.trades;
  const at = trade.status === "FILLED" ? ` @ ${price(trade.entryPrice, trade.symbol)}` : "";
  const text = `${trade.status} ${trade.side} ${trade.quantity} ${trade.symbol}${at}${part ? ` · ${part}` : ""}`;
  addFeed(trade.status === "FILLED" ? "trade" : "rejected", trade.reason ? `${text}: ${trade.reason}` : text,
    trade.strategyId, trade.timestamp);
  if (trade.status === "FILLED") {
    foldClosedTrade(trade);
    const { entryPrice, side, symbol, quantity } = trade;
    state.chart.fills.push({ t: Date.parse(trade.timestamp), price: entryPrice, side, symbol, quantity });
    if (state.chart.fills.length > TRADE_MARKERS_LIMIT) state.chart.fills.shift();
    if (symbol === state.chart.symbol) renderSoon(renderMarkers);
  }
  scheduleRiskRefresh();
}

// A part of an order (partial fills) in words: "partial, 4 of 10" (its order's quantity
// filled so far, of its whole), "last part, 10 of 10"; "" for a whole fill. The parts
// before are those this page saw (the recent activity and the live trades).
function partOf(trade) {
  const before = state.orderParts.get(trade.orderId);
  if (!trade.partial && before === undefined) return "";
  const filled = (before ?? 0) + trade.quantity;
  const total = filled + (trade.remainingQuantity ?? 0);
  if (trade.partial) {
    state.orderParts.set(trade.orderId, filled);
    if (state.orderParts.size > SEEN_LIMIT) state.orderParts.delete(state.orderParts.keys().next().value);
  } else {
    state.orderParts.delete(trade.orderId);
  }
  const word = trade.partial ? "partial" : "last part";
  return `${word}, ${Number(filled.toPrecision(12))} of ${Number(total.toPrecision(12))}`;
}

// A fill and what it added to realized P&L, newest first, in time order however it came.
function addTradeRow(trade, part = "") {
  const body = $("trade-rows");
  const row = document.createElement("tr");
  row.dataset.id = trade.id;
  const cells = [
    new Date(trade.timestamp).toLocaleTimeString(),
    trade.strategyId,
    trade.symbol,
    trade.side,
    fixed(trade.quantity, 0),
    price(trade.entryPrice, trade.symbol),
    trade.realizedPnl === null || trade.realizedPnl === undefined ? "–" : signed(trade.realizedPnl, 2),
  ];
  for (const [index, text] of cells.entries()) {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (index >= 4) cell.className = "num";
    if (index === 6 && trade.realizedPnl) cell.classList.add(trade.realizedPnl > 0 ? "gain" : "loss");
    row.append(cell);
  }
  if (part) {
    row.dataset.part = part;
    row.title = `${trade.orderId}: ${part}`;
  }
  placeByTime(body, row, Date.parse(trade.timestamp));
  while (body.children.length > FEED_LIMIT) body.lastElementChild.remove();
}

// Newest first: before the first element that is not newer (live ones go on top at
// once). Each element keeps its time (ms) in data-time.
function placeByTime(list, element, time) {
  element.dataset.time = String(time);
  const later = [...list.children].find((other) => other !== element && Number(other.dataset.time) <= time);
  list.insertBefore(element, later ?? null);
}

// Refusals a strategy repeats bar after bar would fill the view with one line each;
// the same refusal again, among the last few lines, counts up on its line instead
// ("×12") and moves to the top.
const COLLAPSED_KINDS = new Set(["rejected", "order_rejected"]);
const COLLAPSE_WITHIN = 10;

function earlierRepeat(list, kind, text, strategyId) {
  if (!COLLAPSED_KINDS.has(kind)) return null;
  const recent = [...list.children].slice(0, COLLAPSE_WITHIN);
  return recent.find(
    (item) =>
      item.dataset.kind === kind &&
      (item.querySelector(".who")?.textContent ?? null) === strategyId &&
      item.querySelector(".what").textContent === text,
  ) ?? null;
}

function addFeed(kind, text, strategyId = null, timestamp = null, list = $("feed")) {
  const when = timestamp ? new Date(timestamp) : new Date();
  const repeated = earlierRepeat(list, kind, text, strategyId);
  if (repeated) {
    const count = Number(repeated.dataset.repeat ?? "1") + 1;
    repeated.dataset.repeat = String(count);
    repeated.querySelector(".repeat").textContent = `×${count}`;
    const time = repeated.querySelector("time");
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString();
    repeated.dataset.time = String(when.getTime());
    list.prepend(repeated);
    return;
  }
  const item = document.createElement("li");
  item.dataset.kind = kind;
  const time = document.createElement("time");
  time.dateTime = when.toISOString();
  time.textContent = when.toLocaleTimeString();
  const tag = document.createElement("span");
  tag.className = `tag ${kind}`;
  tag.textContent = kind;
  item.append(time, tag);
  if (strategyId) {
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = strategyId;
    item.append(who);
  }
  const what = document.createElement("span");
  what.className = "what";
  what.textContent = text;
  const repeat = document.createElement("span");
  repeat.className = "repeat";
  item.append(what, repeat);
  placeByTime(list, item, when.getTime());
  while (list.children.length > FEED_LIMIT) list.lastElementChild.remove();
}

// ---------------------------------------------------------------- risk

let riskTimer = null;

function scheduleRiskRefresh() {
  if (riskTimer === null) riskTimer = setTimeout(() => ((riskTimer = null), refreshRisk()), 300);
}

async function refreshRisk() {
  refreshAccount();
  const risk = state.service?.connectionStatus().servers.risk;
  if (!risk || risk.state !== "connected") return;
  try {
    const status = await state.service.getRiskStatus();
    state.risk = status;
    for (const strategy of status.strategies) state.lastRisk.set(strategy.strategyId, strategy);
    // A strategy gone from the status holds no position any more: keep its P&L, drop positions.
    for (const [id, strategy] of state.lastRisk) {
      if (!status.strategies.some((s) => s.strategyId === id)) strategy.positions = [];
    }
    renderRisk();
    renderStrategies();
  } catch {
    // the connection dropped mid-request: the next poll tries again
  }
}

function renderRisk() {
  const risk = state.risk;
  if (!risk) return;
  const kill = risk.killSwitch;
  $("kill-switch-state").textContent = kill.engaged
    ? `engaged (${kill.source}${kill.blockAll ? ", blocks all" : ", reduce-only"}): ${kill.reason}`
    : "released";
  $("kill-switch-state").dataset.engaged = String(kill.engaged);
  $("gross-exposure").textContent = `${fixed(risk.usage.grossExposure, 2)} / ${fixed(risk.limits.maxGrossExposure, 0)}`;
  $("daily-pnl").textContent = `${signed(risk.usage.dailyPnl, 2)} (loss limit ${fixed(risk.limits.maxDailyLoss, 0)})`;
  $("daily-pnl").className = risk.usage.dailyPnl > 0 ? "gain" : risk.usage.dailyPnl < 0 ? "loss" : "";
  $("header-pnl").textContent = signed(risk.usage.dailyPnl, 2);
  $("header-pnl").className = $("daily-pnl").className;
  $("orders-per-second").textContent = `${risk.usage.ordersLastSecond} / ${risk.limits.maxOrdersPerSecond}`;
}

// ---------------------------------------------------------------- account

async function refreshAccount() {
  if (!state.service?.isConnected()) return;
  try {
    renderAccount((await state.service.request("orchestrator", { type: "get_account" })).data);
  } catch {
    // the connection dropped mid-request, or an older daemon: the next poll tries again
  }
}

const ACCOUNT_FIELDS = {
  "account-equity": ["equity", fixed],
  "account-cash": ["cash", fixed],
  "account-exposure": ["exposure", fixed],
  "account-realized-today": ["realizedPnlToday", signed],
  "account-realized-since-start": ["realizedPnlSinceStart", signed],
  "account-unrealized": ["unrealizedPnl", signed],
};

function renderAccount(account) {
  for (const [id, [field, format]] of Object.entries(ACCOUNT_FIELDS)) {
    const value = account[field];
    $(id).textContent = format(value, 2);
    $(id).dataset.value = String(value);
    if (format === signed) $(id).className = value > 0 ? "gain" : value < 0 ? "loss" : "";
  }
  $("account").dataset.stale = "false";
}

// ---------------------------------------------------------------- closed trades

// A round trip runs from a fill that opens a position from flat to the fill that
// takes it back to flat (or through zero: a reversal closes one trip and opens the
// next). Each fill says the position it left (positionQuantity), so the fills of a
// (strategy, symbol), kept in time order however they came, pair up on their own; a
// trip whose opening fill is older than what the page has seen is left out.
function foldClosedTrade(trade) {
  if (typeof trade.positionQuantity !== "number") return;
  const key = `${trade.strategyId}|${trade.symbol}`;
  const fills = state.positionFills.get(key) ?? [];
  state.positionFills.set(key, fills);
  fills.push(trade);
  if (fills.length > 1 && inFillOrder(trade, fills.at(-2)) < 0) fills.sort(inFillOrder);
  if (fills.length > FILLS_PER_POSITION) fills.shift();
  renderSoon(renderClosedTrades);
}

// Most fills come in time order: the sort is only for one that came late.
function inFillOrder(a, b) {
  return Date.parse(a.timestamp) - Date.parse(b.timestamp) || a.id.localeCompare(b.id);
}

function roundTrips(fills) {
  const trips = [];
  let open = null;
  for (const fill of fills) {
    const sign = fill.side === "BUY" ? 1 : -1;
    const after = fill.positionQuantity;
    const before = after - sign * fill.quantity;
    const flatBefore = Math.abs(before) < QUANTITY_EPSILON;
    if (open === null && !flatBefore && Math.sign(after) === Math.sign(before)) continue; // unseen start
    if (open !== null && Math.sign(before) === sign) {
      open.entryQuantity += fill.quantity; // adding to the position
      open.entryCost += fill.quantity * fill.entryPrice;
      open.pnl += fill.realizedPnl ?? 0;
      continue;
    }
    if (open !== null) {
      const closed = Math.min(fill.quantity, Math.abs(before));
      open.exitQuantity += closed;
      open.exitValue += closed * fill.entryPrice;
      open.pnl += fill.realizedPnl ?? 0;
      if (Math.abs(after) < QUANTITY_EPSILON || Math.sign(after) !== Math.sign(before)) {
        trips.push({ ...open, exit: fill });
        open = null;
      }
    }
    if (open === null && Math.abs(after) >= QUANTITY_EPSILON) {
      const opened = Math.abs(after); // from flat, or what a reversal opened
      const pnl = flatBefore ? fill.realizedPnl ?? 0 : 0; // a reversal's P&L closed the last trip
      open = { entry: fill, side: after > 0 ? "long" : "short", entryQuantity: opened,
        entryCost: opened * fill.entryPrice, exitQuantity: 0, exitValue: 0, pnl };
    }
  }
  return trips;
}

function renderClosedTrades() {
  const trips = [...state.positionFills.values()].flatMap(roundTrips);
  trips.sort((a, b) => Date.parse(b.exit.timestamp) - Date.parse(a.exit.timestamp) || b.exit.id.localeCompare(a.exit.id));
  $("closed-rows").replaceChildren(...trips.slice(0, CLOSED_TRADES_LIMIT).map(closedTradeRow));
}

function closedTradeRow(trip) {
  const { entry, exit } = trip;
  const entryPrice = trip.entryCost / trip.entryQuantity;
  const pnlPct = (trip.pnl / trip.entryCost) * 100;
  const row = document.createElement("tr");
  Object.assign(row.dataset, { testid: "closed-trade", exitId: exit.id, pnl: String(trip.pnl), pnlPct: String(pnlPct) });
  const cells = [
    [entry.strategyId], [entry.symbol], [trip.side], [fixed(trip.entryQuantity, 0), "num"],
    [new Date(entry.timestamp).toLocaleTimeString()], [price(entryPrice, entry.symbol), "num"],
    [new Date(exit.timestamp).toLocaleTimeString()], [price(trip.exitValue / trip.exitQuantity, entry.symbol), "num"],
    [signed(trip.pnl, 2), `num ${trip.pnl > 0 ? "gain" : trip.pnl < 0 ? "loss" : ""}`, "closed-pnl"],
    [`${signed(pnlPct, 2)} %`, "num"], [exit.purpose ?? "signal", "", "closed-reason"],
  ];
  for (const [text, className = "", testid] of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    cell.className = className;
    if (testid) cell.dataset.testid = testid;
    row.append(cell);
  }
  return row;
}

function onRiskEvent(event) {
  const d = event.data;
  let text;
  if (event.type === "kill_switch") {
    text = d.engaged ? `kill switch engaged: ${d.reason}` : "kill switch released";
    if (state.risk) state.risk.killSwitch = d;
    renderRisk();
  } else if (event.type === "order_rejected") {
    text = `${d.side} ${d.quantity} ${d.symbol} rejected: ${d.reason}`;
  } else if (event.type === "stop_loss_triggered") {
    text = `stop-loss ${d.symbol}: ${d.reason ?? "exit"}`;
  } else {
    text = d.reason ?? d.message ?? JSON.stringify(d);
  }
  addFeed(event.type, text, d.strategyId ?? null, event.timestamp, $("risk-events"));
}

function onExecutionStatus(data) {
  state.execution = data.status;
  const element = $("execution-status");
  element.textContent = data.status;
  element.dataset.status = data.status;
  element.title = data.reason ?? "";
  renderKillSwitch();
}

function renderKillSwitch() {
  const button = $("kill-switch");
  const halted = state.execution === "STOPPED";
  button.textContent = halted ? "Resume trading" : "Kill switch";
  button.dataset.action = halted ? "resume" : "halt";
  const risk = state.service?.connectionStatus().servers.risk;
  button.disabled = !risk || risk.state !== "connected" || state.execution === null;
}

async function onKillSwitch() {
  const button = $("kill-switch");
  const halting = button.dataset.action === "halt";
  let blockAll = false;
  if (halting) {
    const answer = await confirmAction({
      title: "Engage the kill switch?",
      text: "Every strategy's new orders are refused until you resume trading.",
      confirm: "Engage the kill switch",
      haltMode: true,
    });
    if (!answer.ok) return;
    blockAll = answer.blockAll;
  }
  button.disabled = true;
  try {
    if (halting) {
      await state.service.haltTrading("kill switch pressed on the dashboard", { blockAll });
    } else {
      await state.service.resumeTrading("released on the dashboard");
    }
    showCommandError(null);
  } catch (error) {
    showCommandError(`kill switch: ${error.message}`);
  } finally {
    renderKillSwitch();
    refreshRisk();
  }
}

// ---------------------------------------------------------------- the start dialog

// Symbols, resolution, limits and stop-loss, checked against the bounds start_strategy
// applies (config.json's startConfig, from the daemon's own model) before it is sent;
// what the daemon still refuses is shown in the dialog.
const START_NUMBERS = ["maxPositionValue", "maxOrdersPerMinute", "stopLossPercentage"];
const PERCENT_FIELDS = new Set(["stopLossPercentage"]); // typed in %, a fraction on the wire

function setupStartDialog(config) {
  const select = $("start-resolution");
  select.append(new Option("default", ""));
  for (const resolution of config.startConfig.resolutions) select.append(new Option(resolution, resolution));
  const symbols = $("start-symbols");
  for (const symbol of config.symbols) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    Object.assign(box, { type: "checkbox", value: symbol });
    box.dataset.testid = `start-symbol-${symbol}`;
    label.append(box, ` ${symbol}`);
    symbols.append(label);
  }
  $("start-cancel").addEventListener("click", () => $("start-dialog").close());
  $("start-ok").addEventListener("click", submitStartDialog);
}

function openStartDialog(id) {
  const entry = state.catalog.get(id);
  const dialog = $("start-dialog");
  dialog.dataset.startsStrategy = id;
  $("start-title").textContent = `Start ${entry.name}`;
  for (const box of $("start-symbols").querySelectorAll("input")) box.checked = entry.symbols.includes(box.value);
  $("start-resolution").value = "";
  for (const name of START_NUMBERS) $(`start-${name}`).value = "";
  showStartError(null);
  dialog.showModal();
}

function startConfigFromDialog() {
  const symbols = [...$("start-symbols").querySelectorAll("input:checked")].map((box) => box.value);
  if (symbols.length === 0) return { problem: "choose at least one symbol" };
  const config = { symbols };
  if ($("start-resolution").value) config.dataResolution = $("start-resolution").value;
  for (const name of START_NUMBERS) {
    const text = $(`start-${name}`).value.trim();
    if (text === "") continue;
    const typed = Number(text);
    const value = PERCENT_FIELDS.has(name) ? typed / 100 : typed;
    const problem = outOfBounds(name, text, value);
    if (problem) return { problem };
    config[name] = value;
  }
  return { config };
}

function outOfBounds(name, text, value) {
  const bounds = state.config.startConfig.numbers[name];
  const label = $(`start-${name}`).parentElement.firstChild.textContent.trim();
  const scale = PERCENT_FIELDS.has(name) ? 100 : 1;
  const shown = (bound) => fixed(bound * scale, PERCENT_FIELDS.has(name) ? 1 : 0);
  if (!Number.isFinite(value)) return `${label}: "${text}" is not a number`;
  if (bounds.type === "integer" && !Number.isInteger(value)) return `${label}: a whole number`;
  if (bounds.minimum !== undefined && value < bounds.minimum) return `${label}: at least ${shown(bounds.minimum)}`;
  if (bounds.exclusiveMinimum !== undefined && value <= bounds.exclusiveMinimum) return `${label}: more than ${shown(bounds.exclusiveMinimum)}`;
  if (bounds.maximum !== undefined && value > bounds.maximum) return `${label}: at most ${shown(bounds.maximum)}`;
  if (bounds.exclusiveMaximum !== undefined && value >= bounds.exclusiveMaximum) return `${label}: less than ${shown(bounds.exclusiveMaximum)}`;
  return null;
}

async function submitStartDialog() {
  const dialog = $("start-dialog");
  const { config, problem } = startConfigFromDialog();
  if (problem) return showStartError(problem);
  const id = dialog.dataset.startsStrategy;
  $("start-ok").disabled = true;
  try {
    await state.service.startStrategy(id, config);
    dialog.close();
  } catch (error) {
    showStartError(`the daemon refused: ${error.message}`);
  } finally {
    $("start-ok").disabled = false;
  }
}

function showStartError(text) {
  const element = $("start-error");
  element.hidden = text === null;
  element.textContent = text ?? "";
}

// ---------------------------------------------------------------- confirmations

// A modal question before what cannot be undone; resolves {ok, blockAll}.
function confirmAction({ title, text, confirm, haltMode = false }) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = confirm;
  $("halt-mode").hidden = !haltMode;
  dialog.querySelector("[value=reduce-only]").checked = true;
  return new Promise((resolve) => {
    const answer = (ok) => () => dialog.close(ok ? "ok" : "cancel");
    const onOk = answer(true);
    const onCancel = answer(false);
    $("confirm-ok").addEventListener("click", onOk);
    $("confirm-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("close", () => {
      $("confirm-ok").removeEventListener("click", onOk);
      $("confirm-cancel").removeEventListener("click", onCancel);
      const blockAll = dialog.querySelector("[value=block-all]").checked;
      resolve({ ok: dialog.returnValue === "ok", blockAll });
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// ---------------------------------------------------------------- chart

// Candles of one symbol at one resolution, drawn by the vendored TradingView
// Lightweight Charts (vendor/): the last closed bars (get_bars), then the live
// ones. The live stream is subscribed before the history is asked for, so no
// bar falls in between; a bar of both has the same start and is stored once.
// Fills are marked on the bar they filled in, once that bar has closed.

function setupChart(symbols) {
  const charts = window.LightweightCharts;
  const chart = state.chart;
  chart.api = charts.createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "transparent" }, textColor: "#8b949e" },
    grid: { vertLines: { color: "#21262d" }, horzLines: { color: "#21262d" } },
    rightPriceScale: { borderColor: "#30363d" },
    timeScale: { borderColor: "#30363d", timeVisible: true, secondsVisible: true },
  });
  chart.candles = chart.api.addSeries(charts.CandlestickSeries, {
    upColor: "#3fb950", downColor: "#f85149", borderVisible: false,
    wickUpColor: "#3fb950", wickDownColor: "#f85149",
    priceFormat: { type: "custom", formatter: (value) => price(value, chart.symbol) },
  });
  chart.markers = charts.createSeriesMarkers(chart.candles, []);
  const select = $("chart-symbol");
  for (const symbol of symbols) select.append(new Option(symbol, symbol));
  const wanted = (params.get("symbol") ?? "").toUpperCase();
  select.value = symbols.includes(wanted) ? wanted : symbols[0];
  const resolution = $("chart-resolution");
  if (params.has("resolution")) resolution.value = params.get("resolution");
  if (!resolution.value) resolution.value = "5s";
  select.addEventListener("change", chooseChart);
  resolution.addEventListener("change", chooseChart);
  chooseChart();
}

function chooseChart() {
  const chart = state.chart;
  chart.quotes?.unsubscribe();
  chart.live?.unsubscribe();
  chart.symbol = $("chart-symbol").value;
  chart.resolution = $("chart-resolution").value;
  chart.seconds = RESOLUTION_SECONDS[chart.resolution];
  chart.bars = new Map(); // bar start (s) -> candle
  renderCandles();
  $("last-price").textContent = "";
  Object.assign($("chart").dataset, { symbol: chart.symbol, resolution: chart.resolution });
  chart.quotes = state.service.getQuotes(chart.symbol).subscribe((quote) => {
    $("last-price").textContent = price(quote.price, quote.symbol);
  });
  chart.live = state.service.getBars(chart.symbol, chart.resolution).subscribe(onBar);
  loadChartHistory();
  chooseLines(state.lines.strategyId);
}

// ---------------------------------------------------------------- indicator lines

// The chosen strategy's indicator lines in the chart's symbol: its recent points
// (get_indicators) then each bar's (strategy_indicators), one line series per name.
function renderLineChoices() {
  const select = $("chart-lines");
  const ids = [...state.catalog.keys()].sort();
  const have = [...select.options].slice(1).map((option) => option.value);
  if (have.join() !== ids.join()) {
    select.replaceChildren(new Option("no lines", ""), ...ids.map((id) => new Option(`lines: ${id}`, id)));
  }
  if (!state.lines.chosen && state.lines.strategyId === null) {
    const wanted = params.get("lines");
    const running = [...state.catalog.values()].find(
      (entry) => entry.status === "ACTIVE" && entry.symbols.includes(state.chart.symbol));
    const pick = wanted && state.catalog.has(wanted) ? wanted : running?.id;
    if (pick) chooseLines(pick);
  }
  select.value = state.lines.strategyId ?? "";
}

async function chooseLines(strategyId) {
  const lines = state.lines;
  lines.strategyId = strategyId;
  for (const series of lines.series.values()) state.chart.api.removeSeries(series);
  lines.series = new Map();
  lines.points = new Map();
  renderLines();
  if (!strategyId || !state.service?.isConnected()) return;
  const symbol = state.chart.symbol;
  try {
    const reply = await state.service.request("orchestrator",
      { type: "get_indicators", strategyId, symbol, limit: LINE_POINTS_LIMIT });
    if (lines.strategyId !== strategyId || state.chart.symbol !== symbol) return;
    for (const point of reply.data.points) addLinePoint(point);
    renderLines();
  } catch (error) {
    showCommandError(`could not load the indicator lines: ${error.message}`);
  }
}

function onIndicators(message) {
  const data = message.data;
  if (message.type !== "strategy_indicators" || data.strategyId !== state.lines.strategyId) return;
  if (data.symbol !== state.chart.symbol) return;
  addLinePoint(data);
  renderLines();
}

function addLinePoint(point) {
  const time = Date.parse(point.start) / 1000;
  for (const [name, value] of Object.entries(point.values)) {
    const points = state.lines.points.get(name) ?? new Map();
    state.lines.points.set(name, points);
    points.set(time, value);
    if (points.size > LINE_POINTS_LIMIT) points.delete(points.keys().next().value);
  }
}

function renderLines() {
  const { points, series } = state.lines;
  const charts = window.LightweightCharts;
  for (const [name, values] of points) {
    if (!series.has(name)) {
      series.set(name, state.chart.api.addSeries(charts.LineSeries, {
        color: LINE_COLORS[series.size % LINE_COLORS.length], lineWidth: 1, title: name,
        priceLineVisible: false, lastValueVisible: false,
        priceFormat: { type: "custom", formatter: (value) => price(value, state.chart.symbol) },
      }));
    }
    const data = [...values].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
    series.get(name).setData(data);
  }
  const names = [...series.keys()];
  Object.assign($("chart").dataset, {
    lines: names.join(","),
    linePoints: String(names.length ? points.get(names[0]).size : 0),
    linesOf: state.lines.strategyId ?? "",
  });
}

// Also after 3001 comes back: the bars that closed while it was away.
async function loadChartHistory() {
  const { symbol, resolution } = state.chart;
  try {
    const bars = await state.service.getRecentBars(symbol, resolution, CHART_BARS_LIMIT);
    if (symbol !== state.chart.symbol || resolution !== state.chart.resolution) return;
    for (const bar of bars) state.chart.bars.set(barTime(bar), candle(bar));
    renderCandles();
  } catch (error) {
    showCommandError(`could not load the chart's history: ${error.message}`);
  }
}

function onBar(bar) {
  const chart = state.chart;
  const time = barTime(bar);
  const newest = chart.bars.size === 0 || time >= Math.max(...chart.bars.keys());
  chart.bars.set(time, candle(bar));
  if (newest && chart.bars.size <= CHART_BARS_LIMIT) {
    chart.candles.update(chart.bars.get(time));
    $("chart").dataset.bars = String(chart.bars.size);
    renderSoon(renderMarkers);
  } else {
    renderCandles();
  }
}

const barTime = (bar) => Date.parse(bar.start) / 1000;
const candle = (bar) => ({ time: barTime(bar), open: bar.open, high: bar.high, low: bar.low, close: bar.close });

function renderCandles() {
  const chart = state.chart;
  const times = [...chart.bars.keys()].sort((a, b) => a - b);
  for (const time of times.slice(0, Math.max(0, times.length - CHART_BARS_LIMIT))) chart.bars.delete(time);
  chart.candles.setData(times.slice(-CHART_BARS_LIMIT).map((time) => chart.bars.get(time)));
  $("chart").dataset.bars = String(chart.bars.size);
  renderSoon(renderMarkers);
}

function renderMarkers() {
  const { fills, symbol, seconds, bars } = state.chart;
  const markers = fills
    .filter((fill) => fill.symbol === symbol)
    .map((fill) => ({ fill, time: Math.floor(fill.t / 1000 / seconds) * seconds }))
    .filter(({ time }) => bars.has(time))
    .sort((a, b) => a.time - b.time)
    .map(({ fill, time }) => {
      const buy = fill.side === "BUY";
      return {
        time,
        position: buy ? "belowBar" : "aboveBar",
        shape: buy ? "arrowUp" : "arrowDown",
        color: buy ? "#3fb950" : "#f85149",
        text: `${buy ? "B" : "S"} ${fill.quantity}`,
      };
    });
  state.chart.markers.setMarkers(markers);
  $("chart").dataset.markers = String(markers.length);
}

// ---------------------------------------------------------------- helpers

// Thousands grouped and decimals fixed, as the CLI writes them ("{:,.2f}"): 18,723.56.
const FORMATS = new Map();
function fixed(value, digits) {
  if (!FORMATS.has(digits)) {
    FORMATS.set(digits, new Intl.NumberFormat("en-US", {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    }));
  }
  return FORMATS.get(digits).format(value);
}

// A price to its instrument's decimals (two until the daemon has described it).
function price(value, symbol) {
  return fixed(value, state.priceDecimals.get(symbol) ?? 2);
}

function signed(value, digits) {
  const text = fixed(Math.abs(value), digits);
  return value > 0 ? `+${text}` : value < 0 ? `-${text}` : text;
}

main().catch((error) => {
  const indicator = $("connection");
  indicator.dataset.state = "closed";
  indicator.querySelector(".label").textContent = `Failed to start: ${error.message}`;
});
