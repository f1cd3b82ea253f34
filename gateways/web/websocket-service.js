// WebSocketService: the browser client of the strategy orchestrator daemon.
//
// A dependency-free ES module (declarations in websocket-service.d.ts) that
// mirrors the frontend service of the stock-bot API document:
// getStrategySignals(id), getStrategyTrades(id) and getStrategyUpdates() return
// subscribable streams ({subscribe(next) -> {unsubscribe()}}, the shape RxJS's
// `from()` and Angular accept), isConnected() tells the connection state, and
// startStrategy / pauseStrategy / stopStrategy send the commands and resolve
// with the reply that carries their requestId.
//
// It keeps one WebSocket per server (8082 orchestrator, 3002 risk guardian,
// 3001 market data), each reconnecting with exponential backoff and jitter.
// A reconnect resumes the server's stream where it left off (lastSeq and
// epoch, docs/limits-and-security.md), so nothing broadcast while the client
// was away is lost; after a daemon restart the server sends a fresh snapshot
// instead and `resync$` says so. With a token, the first message on each
// connection is {"type": "auth", "token": ...} (browsers cannot set headers).

export const DEFAULT_URLS = Object.freeze({
  orchestratorUrl: "ws://localhost:8082",
  riskUrl: "ws://localhost:3002/ws",
  marketDataUrl: "ws://localhost:3001/ws",
});

// The servers as people call them, for messages; the keys are the API's names.
export const SERVER_LABELS = Object.freeze({
  orchestrator: "strategy orchestrator",
  marketData: "market data",
  risk: "risk guardian",
});

/** A server's name for a message a person reads ("market data", not "marketData"). */
export function serverLabel(server) {
  return SERVER_LABELS[server] ?? server;
}

export const DEFAULT_BACKOFF = Object.freeze({
  initialMs: 500,
  maxMs: 10000,
  factor: 2,
  jitter: 0.3,
});

export const DEFAULT_REQUEST_TIMEOUT_MS = 15000;

const UPDATE_TYPES = new Set([
  "strategy_status_list",
  "strategy_started",
  "strategy_paused",
  "strategy_stopped",
  "strategy_error",
]);

// A resting order's lifecycle on 8082 (docs/orders.md).
const ORDER_EVENT_TYPES = new Set([
  "order_accepted",
  "order_triggered",
  "order_cancelled",
  "order_replaced",
  "order_expired",
  "order_partially_filled",
]);

const BACKTEST_TYPES = new Set(["backtest_job", "backtest_progress"]);
const SWEEP_TYPES = new Set(["sweep_job", "sweep_progress"]);

const RISK_EVENT_TYPES = new Set([
  "order_rejected",
  "order_reduced",
  "stop_loss_triggered",
  "limit_breach",
  "kill_switch",
]);

/** An error reply (`{"type": "error"}`), a timeout or a lost connection. */
export class ServiceError extends Error {
  constructor(code, message, reply = null, requestType = null) {
    super(message);
    this.name = "ServiceError";
    this.code = code;
    this.reply = reply;
    this.requestType = requestType;
  }
}

// ---------------------------------------------------------------- streams

function toObserver(observerOrNext) {
  if (typeof observerOrNext === "function") return { next: observerOrNext };
  return observerOrNext ?? {};
}

function interop(stream) {
  // RxJS's from() and other libraries look for Symbol.observable or "@@observable".
  stream["@@observable"] = () => stream;
  if (typeof Symbol === "function" && typeof Symbol.observable === "symbol") {
    stream[Symbol.observable] = () => stream;
  }
  return stream;
}

/** A multicast stream of values; late subscribers get what comes next. */
export class Stream {
  constructor({ replayLatest = false, onFirst = null, onLast = null } = {}) {
    this._observers = new Set();
    this._replayLatest = replayLatest;
    this._hasValue = false;
    this._value = undefined;
    this._onFirst = onFirst;
    this._onLast = onLast;
    interop(this);
  }

  /** The last value emitted (streams created with replayLatest). */
  get value() {
    return this._value;
  }

  subscribe(observerOrNext) {
    const entry = { observer: toObserver(observerOrNext) };
    this._observers.add(entry);
    if (this._observers.size === 1 && this._onFirst) this._onFirst();
    if (this._replayLatest && this._hasValue) deliver(entry, this._value);
    const subscription = {
      closed: false,
      unsubscribe: () => {
        if (subscription.closed) return;
        subscription.closed = true;
        this._observers.delete(entry);
        if (this._observers.size === 0 && this._onLast) this._onLast();
      },
    };
    return subscription;
  }

  next(value) {
    this._hasValue = true;
    this._value = value;
    for (const entry of [...this._observers]) {
      if (this._observers.has(entry)) deliver(entry, value);
    }
  }

  /** A stream of the values that pass `predicate`; it subscribes to this one lazily. */
  filter(predicate) {
    return view(this, (value, emit) => {
      if (predicate(value)) emit(value);
    });
  }

  map(project) {
    return view(this, (value, emit) => emit(project(value)));
  }
}

function deliver(entry, value) {
  try {
    entry.observer.next?.(value);
  } catch (error) {
    console.error("WebSocketService: a subscriber threw", error);
  }
}

/** A derived stream: `step` decides what each value of `source` becomes. */
function view(source, step) {
  return interop({
    subscribe(observerOrNext) {
      const observer = toObserver(observerOrNext);
      return source.subscribe((value) => step(value, (out) => observer.next?.(out)));
    },
    filter(predicate) {
      return view(this, (value, emit) => {
        if (predicate(value)) emit(value);
      });
    },
    map(project) {
      return view(this, (value, emit) => emit(project(value)));
    },
  });
}

// ---------------------------------------------------------------- one connection

function withQuery(url, params) {
  const parsed = new URL(url);
  for (const [name, value] of Object.entries(params)) parsed.searchParams.set(name, String(value));
  return parsed.toString();
}

function backoffDelay(backoff, attempt) {
  const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** attempt);
  return Math.round(base * (1 - backoff.jitter * Math.random()));
}

/**
 * One server's WebSocket: reconnects with backoff, resumes its stream, matches
 * replies to requests by requestId. `resumeBy` is "url" (8082, 3002) or
 * "command" (3001, which must subscribe again before it resumes).
 */
class Connection {
  constructor(server, url, { token, backoff, requestTimeoutMs, resumeBy, onOpen, onMessage, onState }) {
    this.server = server;
    this.url = url;
    this.token = token ?? null;
    this.backoff = backoff;
    this.requestTimeoutMs = requestTimeoutMs;
    this.resumeBy = resumeBy;
    this.onOpen = onOpen ?? (() => {});
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.state = "idle";
    this.attempt = 0;
    this.retryInMs = null;
    this.lastClose = null;
    this.lastSeq = null;
    this.epoch = null;
    this.position = null; // the last journal position seen: a resume after a daemon restart starts there
    this.pending = new Map(); // requestId -> {resolve, reject, timer, frame, sent}
    this.ids = 0;
    this.retryTimer = null;
    this.closedByUser = false;
    this.discardUntil = null; // requestId of a resume command in flight (resumeBy "command")
  }

  status() {
    return {
      state: this.state,
      url: this.url,
      attempt: this.attempt,
      retryInMs: this.retryInMs,
      lastClose: this.lastClose,
      epoch: this.epoch,
      lastSeq: this.lastSeq,
      position: this.position,
    };
  }

  setState(state) {
    this.state = state;
    this.onState();
  }

  start() {
    this.closedByUser = false;
    if (this.ws || this.retryTimer) return;
    this.open();
  }

  open() {
    this.retryTimer = null;
    this.retryInMs = null;
    if (this.state !== "reconnecting") this.setState("connecting");
    const resume = this.resumeBy === "url" && this.lastSeq !== null && this.epoch !== null;
    const url = resume ? withQuery(this.url, this.resumeFrom()) : this.url;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (error) {
      this.lastClose = { code: 1006, reason: String(error), wasClean: false };
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.token !== null) ws.send(JSON.stringify({ type: "auth", token: this.token }));
      this.onOpen(this);
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(ws, event);
    ws.onerror = () => {}; // always followed by close, which handles it
  }

  close() {
    this.closedByUser = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws) this.ws.close(1000, "client closed");
    else this.setState("closed");
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.discardUntil = null;
    this.lastClose = { code: event.code, reason: event.reason, wasClean: event.wasClean };
    for (const [id, request] of this.pending) {
      if (request.sent) {
        clearTimeout(request.timer);
        this.pending.delete(id);
        request.reject(
          new ServiceError("connection_lost", `the ${serverLabel(this.server)} connection closed before the reply`),
        );
      }
    }
    const refused = event.code === 1008 && /^authentication/.test(event.reason);
    if (this.closedByUser || refused) {
      this.rejectQueued(refused ? "authentication_failed" : "closed", event.reason || "closed");
      this.setState("closed");
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    this.retryInMs = backoffDelay(this.backoff, this.attempt);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.open(), this.retryInMs);
    this.setState("reconnecting");
  }

  receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      console.error(`WebSocketService: ${this.server} sent a frame that is not JSON`);
      return;
    }
    if (message === null || typeof message !== "object") return;
    if (this.state !== "connected") {
      this.attempt = 0;
      this.setState("connected");
      this.flushQueued();
    }
    this.settle(message);
    if (!this.track(message)) return;
    if (message.type === "error" && message.requestId === undefined) {
      console.warn(`WebSocketService: ${this.server}: ${message.data?.code}: ${message.data?.message}`);
    }
    this.onMessage(this, message);
  }

  /** Keeps lastSeq/epoch; false for a message to drop (a duplicate, or sent before `resumed`). */
  track(message) {
    const { type, data } = message;
    if (type === "resumed" || type === "resync_required") {
      if (this.discardUntil !== null && message.requestId === this.discardUntil) this.discardUntil = null;
      this.epoch = data.epoch;
      // After `resumed` the stream goes on from fromSeq (a new run's after a restart).
      this.lastSeq = type === "resync_required" ? data.seq : data.fromSeq - 1;
      return true;
    }
    if (this.discardUntil !== null) return message.seq === undefined && message.requestId !== undefined;
    if (typeof message.position === "number" && (this.position === null || message.position > this.position)) {
      this.position = message.position;
    }
    // No seq: a direct reply, or a committed message the journal replays after a restart.
    if (typeof message.seq !== "number" || typeof message.epoch !== "number") return true;
    if (!message.snapshot && message.epoch === this.epoch && this.lastSeq !== null && message.seq <= this.lastSeq) {
      return false; // seen already
    }
    this.lastSeq = message.seq;
    this.epoch = message.epoch;
    return true;
  }

  settle(message) {
    if (message.requestId === undefined) return;
    const request = this.pending.get(message.requestId);
    if (!request) return;
    clearTimeout(request.timer);
    this.pending.delete(message.requestId);
    if (message.type === "error") {
      const data = message.data ?? {};
      request.reject(new ServiceError(data.code, data.message, message, data.requestType ?? null));
    } else {
      request.resolve(message);
    }
  }

  nextId() {
    this.ids += 1;
    return `${this.server}-${this.ids}`;
  }

  /** Sends a command and resolves with its reply; waits for the connection if it is being made. */
  request(command, timeoutMs = this.requestTimeoutMs) {
    return new Promise((resolve, reject) => {
      if (this.state === "closed" || this.state === "idle") {
        reject(new ServiceError("not_connected", `the ${serverLabel(this.server)} connection is not open`));
        return;
      }
      const requestId = this.nextId();
      const frame = JSON.stringify({ ...command, requestId });
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new ServiceError("timeout", `no reply to ${command.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const request = { resolve, reject, timer, frame, sent: false };
      this.pending.set(requestId, request);
      if (this.state === "connected") this.transmit(request);
    });
  }

  transmit(request) {
    request.sent = true;
    this.ws.send(request.frame);
  }

  /** Fire and forget (subscriptions on reconnect). */
  send(command) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(command));
  }

  flushQueued() {
    for (const request of this.pending.values()) if (!request.sent) this.transmit(request);
  }

  rejectQueued(code, reason) {
    for (const [id, request] of this.pending) {
      clearTimeout(request.timer);
      this.pending.delete(id);
      request.reject(new ServiceError(code, `the ${serverLabel(this.server)} connection closed: ${reason}`));
    }
  }

  /** Resume by command (3001): everything received before `resumed` is dropped. */
  resumeByCommand() {
    if (this.lastSeq === null || this.epoch === null) return;
    const requestId = this.nextId();
    this.discardUntil = requestId;
    this.send({ type: "resume", ...this.resumeFrom(), requestId });
  }

  /** Where the stream resumes: lastSeq of epoch, and the journal position when known. */
  resumeFrom() {
    const from = { lastSeq: this.lastSeq, epoch: this.epoch };
    return this.position === null ? from : { ...from, position: this.position };
  }
}

// ---------------------------------------------------------------- the service

function overallState(states) {
  if (states.every((s) => s === "idle")) return "idle";
  if (states.every((s) => s === "connected")) return "connected";
  if (states.every((s) => s === "closed" || s === "idle")) return "closed";
  if (states.some((s) => s === "reconnecting")) return "reconnecting";
  return "connecting";
}

export class WebSocketService {
  /**
   * @param {object} [options] orchestratorUrl, riskUrl, marketDataUrl (null: no such
   *   connection), token, backoff {initialMs, maxMs, factor, jitter}, requestTimeoutMs,
   *   autoConnect (default true).
   */
  constructor(options = {}) {
    const backoff = { ...DEFAULT_BACKOFF, ...(options.backoff ?? {}) };
    const common = {
      token: options.token ?? null,
      backoff,
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      onMessage: (connection, message) => this._dispatch(connection.server, message),
      onState: () => this._stateChanged(),
    };
    const url = (name) => (options[name] === undefined ? DEFAULT_URLS[name] : options[name]);
    this._connections = {};
    const orchestratorUrl = url("orchestratorUrl");
    if (!orchestratorUrl) throw new TypeError("orchestratorUrl is required");
    this._connections.orchestrator = new Connection("orchestrator", orchestratorUrl, {
      ...common,
      resumeBy: "url",
    });
    if (url("riskUrl")) {
      this._connections.risk = new Connection("risk", url("riskUrl"), { ...common, resumeBy: "url" });
    }
    if (url("marketDataUrl")) {
      this._connections.marketData = new Connection("marketData", url("marketDataUrl"), {
        ...common,
        resumeBy: "command",
        onOpen: (connection) => this._resubscribe(connection),
      });
    }
    this._messages = new Stream();
    this._quotes = new Map(); // symbol -> Stream
    this._bars = new Map(); // "SYMBOL:res" -> Stream
    /** Connection status of the service and of each server; replays the current one. */
    this.connection$ = new Stream({ replayLatest: true });
    /** The execution service's status (RUNNING / STOPPED); replays the latest. */
    this.executionStatus$ = new Stream({ replayLatest: true });
    /** A server could not replay what this client missed and sent a fresh snapshot. */
    this.resync$ = new Stream();
    this._signals = this._messages
      .filter((m) => m.server === "orchestrator" && m.message.type === "strategy_signal")
      .map((m) => m.message.data);
    this._trades = this._messages
      .filter((m) => m.server === "orchestrator" && m.message.type === "strategy_trade")
      .map((m) => m.message.data);
    this._updates = this._messages
      .filter((m) => m.server === "orchestrator" && UPDATE_TYPES.has(m.message.type))
      .map((m) => m.message);
    this._orderEvents = this._messages
      .filter((m) => m.server === "orchestrator" && ORDER_EVENT_TYPES.has(m.message.type))
      .map((m) => m.message);
    this._riskEvents = this._messages
      .filter((m) => m.server === "risk" && RISK_EVENT_TYPES.has(m.message.type))
      .map((m) => m.message);
    this._backtests = this._messages
      .filter((m) => m.server === "orchestrator" && BACKTEST_TYPES.has(m.message.type))
      .map((m) => m.message);
    this._sweeps = this._messages
      .filter((m) => m.server === "orchestrator" && SWEEP_TYPES.has(m.message.type))
      .map((m) => m.message);
    this._stateChanged();
    if (options.autoConnect !== false) this.connect();
  }

  // ------------------------------------------------------------ connection

  connect() {
    for (const connection of Object.values(this._connections)) connection.start();
  }

  close() {
    for (const connection of Object.values(this._connections)) connection.close();
  }

  /** Whether the orchestrator connection (8082) is open and live. */
  isConnected() {
    return this._connections.orchestrator.state === "connected";
  }

  connectionStatus() {
    const servers = {};
    for (const [name, connection] of Object.entries(this._connections)) servers[name] = connection.status();
    const state = overallState(Object.values(servers).map((s) => s.state));
    return { state, connected: this.isConnected(), servers };
  }

  _stateChanged() {
    if (!this.connection$) return;
    const status = this.connectionStatus();
    const previous = this.connection$.value;
    if (previous && JSON.stringify(previous) === JSON.stringify(status)) return;
    this.connection$.next(status);
  }

  // ------------------------------------------------------------ streams

  /** Signals of one strategy (or of every strategy when no id is given). */
  getStrategySignals(strategyId) {
    return strategyId === undefined ? this._signals : this._signals.filter((s) => s.strategyId === strategyId);
  }

  /** Trades of one strategy (or of every strategy), FILLED and REJECTED. */
  getStrategyTrades(strategyId) {
    return strategyId === undefined ? this._trades : this._trades.filter((t) => t.strategyId === strategyId);
  }

  /** strategy_status_list, strategy_started, _paused, _stopped and _error messages. */
  getStrategyUpdates() {
    return this._updates;
  }

  /** 8082's order_accepted, _triggered, _cancelled, _replaced, _expired and
   * _partially_filled messages. */
  getOrderEvents() {
    return this._orderEvents;
  }

  /** 3002's order_rejected, order_reduced, stop_loss_triggered, limit_breach, kill_switch. */
  getRiskEvents() {
    return this._riskEvents;
  }

  /** 8082's backtest_job (each state of every job) and backtest_progress messages. */
  getBacktestUpdates() {
    return this._backtests;
  }

  /** 8082's sweep_job (each state of every sweep) and sweep_progress messages. */
  getSweepUpdates() {
    return this._sweeps;
  }

  /** Every message of one server, or of all of them ({server, message}). */
  getMessages(server) {
    const all = this._messages;
    return server === undefined ? all : all.filter((m) => m.server === server).map((m) => m.message);
  }

  /** Quotes of a symbol from 3001; subscribes while someone listens. */
  getQuotes(symbol) {
    const key = symbol.toUpperCase();
    return this._marketStream(this._quotes, key, { symbols: [key] }, (m) =>
      m.type === "quote" && m.data.symbol === key ? m.data : undefined,
    );
  }

  /** Closed bars of a symbol at a resolution from 3001; subscribes while someone listens. */
  getBars(symbol, resolution) {
    const upper = symbol.toUpperCase();
    return this._marketStream(this._bars, `${upper}:${resolution}`, { symbols: [upper], resolution }, (m) =>
      m.type === "bar" && m.data.symbol === upper && m.data.resolution === resolution ? m.data : undefined,
    );
  }

  _marketStream(streams, key, subscription, pick) {
    const existing = streams.get(key);
    if (existing) return existing.public;
    const market = this._connections.marketData;
    if (!market) throw new ServiceError("not_configured", "no market data URL was given (marketDataUrl)");
    let inner = null;
    const stream = new Stream({
      onFirst: () => {
        inner = this.getMessages("marketData").subscribe((m) => {
          const value = pick(m);
          if (value !== undefined) stream.next(value);
        });
        market.send({ type: "subscribe", ...subscription }); // or on (re)connection: _resubscribe
      },
      onLast: () => {
        inner?.unsubscribe();
        inner = null;
        market.send({ type: "unsubscribe", ...subscription });
      },
    });
    stream.subscription = subscription;
    stream.public = view(stream, (value, emit) => emit(value));
    streams.set(key, stream);
    return stream.public;
  }

  _resubscribe(connection) {
    for (const stream of [...this._quotes.values(), ...this._bars.values()]) {
      if (stream._observers.size > 0) connection.send({ type: "subscribe", ...stream.subscription });
    }
    connection.resumeByCommand();
  }

  _dispatch(server, message) {
    if (message.type === "execution_service_status" && server === "orchestrator") {
      this.executionStatus$.next(message.data);
    }
    if (message.type === "resync_required") this.resync$.next({ server, ...message.data });
    this._messages.next({ server, message });
  }

  // ------------------------------------------------------------ commands

  /** Sends a command to one server and resolves with its reply (rejects with a ServiceError). */
  request(server, command, timeoutMs) {
    const connection = this._connections[server];
    if (!connection) return Promise.reject(new ServiceError("not_configured", `no ${serverLabel(server)} URL was given`));
    return connection.request(command, timeoutMs);
  }

  async getStrategies() {
    return (await this.request("orchestrator", { type: "get_strategies" })).data;
  }

  /** Each symbol of the feed with its price grid and the decimals of its prices. */
  async getInstruments() {
    return (await this.request("orchestrator", { type: "get_instruments" })).data;
  }

  /** The journal's last trades (each with realizedPnl) and signals, oldest first (8082).
   * Ask after the connection's snapshot; a live trade or signal with the same id is the same one. */
  async getRecentActivity(limit = 50) {
    return (await this.request("orchestrator", { type: "get_recent_activity", limit })).data;
  }

  /** The last closed bars of a symbol at a resolution (3001), oldest first. */
  async getRecentBars(symbol, resolution, limit = 300) {
    return (await this.request("marketData", { type: "get_bars", symbol, resolution, limit })).data.bars;
  }

  async getActiveStrategies() {
    return (await this.request("orchestrator", { type: "get_active_strategies" })).data;
  }

  startStrategy(strategyId, config) {
    const command = { type: "start_strategy", id: strategyId };
    if (config !== undefined) command.config = config;
    return this.request("orchestrator", command);
  }

  pauseStrategy(strategyId) {
    return this.request("orchestrator", { type: "pause_strategy", id: strategyId });
  }

  stopStrategy(strategyId) {
    return this.request("orchestrator", { type: "stop_strategy", id: strategyId });
  }

  /** The resting orders (of one strategy, or of every one) as the committed events left them. */
  async getOpenOrders(strategyId) {
    const command = { type: "get_open_orders" };
    if (strategyId !== undefined) command.strategyId = strategyId;
    return (await this.request("orchestrator", command)).data.orders;
  }

  /** Cancels a resting order by id; resolves with its order_cancelled once journaled
   * (rejects with order_not_found when no resting order has that id). */
  cancelOrder(orderId) {
    return this.request("orchestrator", { type: "cancel_order", orderId });
  }

  /** Submits a backtest job (8082); resolves with its backtest_job (pending), which
   * says what it runs. options: symbol, config (as start_strategy's), params, initialCapital. */
  async runBacktest(strategyId, source, options = {}) {
    const command = { type: "run_backtest", strategyId, source };
    for (const name of ["symbol", "symbols", "config", "params", "initialCapital"]) {
      if (options[name] !== undefined) command[name] = options[name];
    }
    return (await this.request("orchestrator", command)).data;
  }

  async cancelBacktest(jobId) {
    return (await this.request("orchestrator", { type: "cancel_backtest", jobId })).data;
  }

  /** Every job the daemon remembers, oldest first, each result with its counts only. */
  async getBacktests() {
    return (await this.request("orchestrator", { type: "get_backtests" })).data;
  }

  /** One job with its whole result as kept (statistics, trades, curves). */
  async getBacktest(jobId) {
    return (await this.request("orchestrator", { type: "get_backtest", jobId })).data;
  }

  /** One page of a completed job's full report: every bar and every trade, page by page. */
  async getBacktestReport(jobId, offset = 0, tradeOffset = 0) {
    const command = { type: "get_backtest_report", jobId, offset, tradeOffset };
    return (await this.request("orchestrator", command)).data.report;
  }

  /** What a backtest form checks: each strategy's params with their bounds, the synthetic
   * source's fields, the capital's bounds, the history files. */
  async getBacktestOptions() {
    return (await this.request("orchestrator", { type: "get_backtest_options" })).data;
  }

  /** Submits a sweep (8082): run_backtest's fields and the search's (parameters, objective,
   * method, trials, seed, heatmap, walkForward); resolves with its sweep_job (pending). */
  async runSweep(command) {
    return (await this.request("orchestrator", { ...command, type: "run_sweep" })).data;
  }

  async cancelSweep(jobId) {
    return (await this.request("orchestrator", { type: "cancel_sweep", jobId })).data;
  }

  /** Every sweep the daemon remembers, oldest first, each result without its trials. */
  async getSweeps() {
    return (await this.request("orchestrator", { type: "get_sweeps" })).data;
  }

  /** One sweep with its whole result (the trials table, the best, the heatmap). */
  async getSweep(jobId) {
    return (await this.request("orchestrator", { type: "get_sweep", jobId })).data;
  }

  async getRiskStatus() {
    return (await this.request("risk", { type: "get_risk_status" })).data;
  }

  /** Engages the kill switch (3002); resolves with its new state. */
  async haltTrading(reason, { blockAll = false } = {}) {
    return (await this.request("risk", { type: "halt_trading", reason, blockAll })).data;
  }

  async resumeTrading(reason) {
    const command = { type: "resume_trading" };
    if (reason !== undefined) command.reason = reason;
    return (await this.request("risk", command)).data;
  }
}
