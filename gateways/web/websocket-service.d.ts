// Type declarations for websocket-service.js, the browser client of the
// strategy orchestrator daemon. Field names are those of the wire protocol
// (README.md, docs/risk.md, docs/limits-and-security.md).

// ---------------------------------------------------------------- streams

export interface Observer<T> {
  next?: (value: T) => void;
  error?: (error: unknown) => void;
  complete?: () => void;
}

export interface Unsubscribable {
  readonly closed: boolean;
  unsubscribe(): void;
}

/**
 * What every stream of the service is: RxJS-compatible, so `from(stream)` or
 * `new Observable(s => stream.subscribe(s))` turns it into an Observable.
 */
export interface Subscribable<T> {
  subscribe(observerOrNext?: Observer<T> | ((value: T) => void)): Unsubscribable;
}

/** Every stream the service returns: subscribable, with lazy `filter` and `map`. */
export interface ServiceStream<T> extends Subscribable<T> {
  filter(predicate: (value: T) => boolean): ServiceStream<T>;
  map<R>(project: (value: T) => R): ServiceStream<R>;
}

/** A multicast stream; with `replayLatest`, a new subscriber gets the last value at once. */
export declare class Stream<T> implements ServiceStream<T> {
  constructor(options?: { replayLatest?: boolean; onFirst?: () => void; onLast?: () => void });
  /** The last value emitted. */
  readonly value: T | undefined;
  subscribe(observerOrNext?: Observer<T> | ((value: T) => void)): Unsubscribable;
  next(value: T): void;
  filter(predicate: (value: T) => boolean): ServiceStream<T>;
  map<R>(project: (value: T) => R): ServiceStream<R>;
}

// ---------------------------------------------------------------- wire types

export type ServerName = "orchestrator" | "risk" | "marketData";
/** The servers as people call them ("market data", not "marketData"), for messages. */
export declare const SERVER_LABELS: Readonly<Record<ServerName, string>>;
export declare function serverLabel(server: ServerName | string): string;
export type StrategyStatus = "ACTIVE" | "PAUSED" | "STOPPED" | "ERROR";
export type ExecutionStatus = "RUNNING" | "STOPPED";
export type Resolution = "1s" | "5s" | "15s" | "30s" | "1m" | "5m" | "15m" | "30m" | "1h" | "4h" | "1d";
/** ISO-8601 UTC, ending in `Z`. */
export type Timestamp = string;
export type RequestId = string | number;

/** Every server message: the stock-bot envelope, plus the stream position of broadcasts. */
export interface Envelope<K extends string = string, D = unknown> {
  type: K;
  timestamp: Timestamp;
  data: D;
  requestId?: RequestId;
  seq?: number;
  epoch?: number;
  snapshot?: true;
}

export interface Position {
  symbol: string;
  quantity: number;
  entryPrice: number;
  /** quantity × last price (negative for a short). */
  currentValue: number;
}

export interface Instrument {
  symbol: string;
  /** The price grid (tick size), e.g. 0.01 or 0.00001. */
  priceIncrement: number;
  /** Decimals a price on that grid needs: 2, 5. */
  priceDecimals: number;
}

export interface StrategyEntry {
  id: string;
  name: string;
  status: StrategyStatus;
  symbols: string[];
  positions: Position[];
}

/** The `config` of start_strategy; omitted fields take the catalog's defaults. */
export interface StrategyConfig {
  symbols: string[];
  dataResolution: Resolution;
  realTrading: false;
  maxPositionValue: number;
  maxOrdersPerMinute: number;
  stopLossPercentage: number;
}

export interface StrategySignal {
  id: string;
  strategyId: string;
  name: string;
  symbol: string;
  price: number;
  action: "BUY" | "SELL";
  quantity: number | null;
  metadata: Record<string, unknown>;
  timestamp: Timestamp;
  confidence: number;
}

export interface StrategyTrade {
  id: string;
  strategyId: string;
  orderId: string;
  symbol: string;
  side: "BUY" | "SELL";
  quantity: number;
  entryPrice: number;
  entryTime: Timestamp;
  status: "FILLED" | "REJECTED";
  timestamp: Timestamp;
  /** Why a REJECTED trade could not fill. */
  reason?: string;
  /** What this fill added to its position's realized P&L, commission included; null for a rejection. */
  realizedPnl: number | null;
  /** A part of its order (partial fills) that leaves some of it open; absent on the last part. */
  partial?: true;
  /** With `partial`: what of its order is still open. */
  remainingQuantity?: number;
}

export interface StrategyStartedData {
  strategyId: string;
  name: string;
  symbols: string[];
}

export interface StrategyNoticeData {
  strategyId: string;
  name: string;
}

export interface StrategyErrorData extends StrategyNoticeData {
  status: "ERROR";
  error: string;
}

export type StrategyStatusListMessage = Envelope<"strategy_status_list", StrategyEntry[]>;
export type StrategyStartedMessage = Envelope<"strategy_started", StrategyStartedData>;
export type StrategyPausedMessage = Envelope<"strategy_paused", StrategyNoticeData>;
export type StrategyStoppedMessage = Envelope<"strategy_stopped", StrategyNoticeData>;
export type StrategyErrorMessage = Envelope<"strategy_error", StrategyErrorData>;

/** What getStrategyUpdates() emits. */
export type StrategyUpdate =
  | StrategyStatusListMessage
  | StrategyStartedMessage
  | StrategyPausedMessage
  | StrategyStoppedMessage
  | StrategyErrorMessage;

export interface ExecutionStatusData {
  status: ExecutionStatus;
  /** Why execution stopped (the kill switch's reason). */
  reason?: string;
}

export interface ErrorData {
  code: string;
  message: string;
  requestType: string | null;
}

export type ErrorMessage = Envelope<"error", ErrorData>;

export interface ResumedData {
  epoch: number;
  fromSeq: number;
  toSeq: number;
  replayed: number;
}

export interface ResyncData {
  reason: string;
  epoch: number;
  seq: number;
}

/** What resync$ emits: a server sent a fresh snapshot instead of what was missed. */
export interface ResyncNotice extends ResyncData {
  server: ServerName;
}

// ---------------------------------------------------------------- 3001

export interface Quote {
  symbol: string;
  price: number;
  size: number;
  timestamp: Timestamp;
}

export interface Bar {
  symbol: string;
  resolution: Resolution;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  start: Timestamp;
  end: Timestamp;
}

export interface RecentActivity {
  /** As strategy_trade said them, realizedPnl included. */
  trades: StrategyTrade[];
  signals: StrategySignal[];
}

// ---------------------------------------------------------------- 3002

export type HaltSource = "COMMAND" | "DAILY_LOSS" | "CONFIG";

export interface KillSwitchState {
  engaged: boolean;
  reason: string | null;
  blockAll: boolean;
  source: HaltSource | null;
  since: Timestamp | null;
}

export interface StrategyLimits {
  maxPositionValue: number;
  maxOrdersPerMinute: number;
  stopLossPercentage: number;
}

export interface RiskPosition extends Position {
  /** The price at which the stop-loss exits; null when it is off. */
  stopPrice: number | null;
}

export interface StrategyRisk {
  strategyId: string;
  status: StrategyStatus;
  limits: StrategyLimits | null;
  exposure: number;
  ordersLastMinute: number;
  realizedPnl: number;
  unrealizedPnl: number;
  positions: RiskPosition[];
}

export interface RiskStatus {
  executionStatus: ExecutionStatus;
  killSwitch: KillSwitchState;
  limits: {
    maxGrossExposure: number;
    maxOrdersPerSecond: number;
    maxDailyLoss: number;
    positionLimitMode: "reject" | "reduce";
  };
  usage: {
    grossExposure: number;
    ordersLastSecond: number;
    dailyPnl: number;
    dailyLoss: number;
    dayStart: Timestamp;
  };
  strategies: StrategyRisk[];
}

/** 3002's events: order_rejected, order_reduced, stop_loss_triggered, limit_breach, kill_switch. */
export type RiskEvent =
  | Envelope<"order_rejected" | "order_reduced" | "stop_loss_triggered" | "limit_breach", Record<string, unknown>>
  | Envelope<"kill_switch", KillSwitchState>;

// ---------------------------------------------------------------- backtest jobs (8082)

export type JobStatus = "pending" | "running" | "completed" | "failed";

export type BacktestSource =
  | { kind: "file" | "csv"; path: string }
  | { kind: "files"; paths: Record<string, string> }
  | {
      kind: "synthetic";
      resolution?: Resolution;
      durationSeconds?: number;
      initialPrice?: number;
      drift?: number;
      volatility?: number;
      ticksPerSecond?: number;
      seed?: number;
    };

export interface BacktestRunOptions {
  symbol?: string;
  /** Several symbols on one account (docs/backtests.md); excludes symbol. */
  symbols?: string[];
  config?: Partial<StrategyConfig>;
  /** The strategy's params for this run, over the catalog's. */
  params?: Record<string, number | boolean | string>;
  initialCapital?: number;
}

/** A job's result (snake_case, as dgbit's job.completed): README, "Backtest jobs". */
export interface BacktestResult {
  total_trades: number;
  win_rate: number;
  total_return: number;
  initial_capital: number;
  final_equity: number;
  bars: number;
  statistics?: Record<string, number | string | null>;
  buy_and_hold_return?: number;
  trades?: Record<string, unknown>[];
  trades_truncated?: boolean;
  open_trade?: Record<string, unknown> | null;
  series?: { time: Timestamp[]; equity: number[]; drawdown_pct: number[]; buy_and_hold: number[] };
  series_points?: number;
  [field: string]: unknown;
}

/** backtest_job: a broadcast state carries the first four fields (and result or error);
 * replies and listings add what the job runs. */
export interface BacktestJob {
  jobId: string;
  jobType: "backtest";
  status: JobStatus;
  result?: BacktestResult;
  error?: string;
  strategyId?: string;
  strategyName?: string;
  symbol?: string;
  /** Several symbols on one account; null for one. */
  symbols?: string[] | null;
  source?: {
    kind: string;
    path?: string;
    paths?: Record<string, string>;
    resolution?: Resolution;
    durationSeconds?: number;
    seed?: number;
  };
  params?: Record<string, unknown>;
  initialCapital?: number | null;
  createdAt?: Timestamp;
  finishedAt?: Timestamp | null;
}

export interface BacktestProgress {
  jobId: string;
  jobType: "backtest";
  fraction: number;
  barsDone: number;
  barsTotal: number;
}

export type BacktestUpdate = Envelope<"backtest_job", BacktestJob> | Envelope<"backtest_progress", BacktestProgress>;

/** A field's JSON-schema bounds, from the model that enforces them. */
export interface FieldBounds {
  type?: "integer" | "number" | "boolean" | "string";
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  default?: unknown;
  description?: string;
}

export interface BacktestOptions {
  strategies: {
    id: string;
    name: string;
    symbols: string[];
    dataResolution: Resolution;
    params: Record<string, unknown>;
    paramBounds: Record<string, FieldBounds>;
    /** Why its code does not load (no bounds then). */
    error?: string;
  }[];
  symbols: string[];
  synthetic: Record<"durationSeconds" | "seed" | "initialPrice" | "drift" | "volatility", FieldBounds>;
  initialCapital: FieldBounds;
  /** Files and directories at the top of jobs.data_dir; null: file backtests are off. */
  files: string[] | null;
}

// ---------------------------------------------------------------- sweeps (8082)

/** One parameter's range (docs/sweeps.md): low/high with a step or a log scale, or choices. */
export type ParameterRange =
  | { low: number; high: number; step?: number; log?: boolean }
  | { choices: (number | boolean | string)[] };

export interface SweepCommand {
  strategyId: string;
  source: BacktestSource;
  symbol?: string;
  config?: Partial<StrategyConfig>;
  initialCapital?: number;
  parameters: Record<string, ParameterRange>;
  objective?: { metric?: string; direction?: "maximize" | "minimize"; minTrades?: number; maxDrawdownPct?: number };
  method?: "grid" | "random" | "tpe";
  /** Trials of a random or TPE search. */
  trials?: number;
  seed?: number;
  heatmap?: [string, string];
  walkForward?: { windows?: number; trainRatio?: number; anchored?: boolean };
}

/** A row of a sweep's trials table (README, "Sweeps"). */
export interface SweepTrial {
  number: number;
  state: "complete" | "failed";
  params: Record<string, number | boolean | string>;
  value: number | null;
  feasible: boolean;
  violations: string[];
  error: string | null;
  total_trades: number;
  trades_digest: string;
  [statistic: string]: unknown;
}

export interface SweepResult {
  strategy_id: string;
  symbol: string;
  method: string;
  objective: { metric: string; direction: "maximize" | "minimize"; min_trades: number; max_drawdown_pct: number | null };
  trials_total: number;
  trials_complete?: number;
  trials_failed?: number;
  trials_feasible?: number;
  trials_computed: number;
  best?: (SweepTrial & { statistics: Record<string, unknown>; strategy_params: Record<string, unknown> }) | null;
  heatmap?: { x: string; y: string; x_values: unknown[]; y_values: unknown[]; values: (number | null)[][]; metric: string } | null;
  /** Absent from get_sweeps' listing. */
  trials?: SweepTrial[];
  /** A walk-forward's windows and its stitched out-of-sample figures. */
  windows?: Record<string, unknown>[];
  out_of_sample?: Record<string, unknown> | null;
}

/** sweep_job: a broadcast state carries the first four fields (and result or error);
 * replies and listings add what the sweep searches. */
export interface SweepJob extends Omit<BacktestJob, "jobType" | "result"> {
  jobType: "sweep";
  result?: SweepResult;
  method?: "grid" | "random" | "tpe";
  parameters?: Record<string, ParameterRange>;
  objective?: SweepResult["objective"];
  trials?: number | null;
}

export interface SweepProgress {
  jobId: string;
  jobType: "sweep";
  fraction: number;
  trialsDone: number;
  trialsTotal: number;
  bestValue: number | null;
  bestParams: Record<string, unknown> | null;
  etaSeconds: number | null;
}

export type SweepUpdate = Envelope<"sweep_job", SweepJob> | Envelope<"sweep_progress", SweepProgress>;

// ---------------------------------------------------------------- the service

/** A resting order as open_orders and the order_* messages show it (docs/orders.md). */
export interface RestingOrder {
  orderId: string;
  strategyId: string;
  symbol: string;
  side: "BUY" | "SELL";
  quantity: number;
  orderType: "LIMIT" | "STOP" | "STOP_LIMIT";
  limitPrice: number | null;
  /** The stop it waits for (a trailing stop's as last announced). */
  stopPrice: number | null;
  timeInForce: "GTC" | "DAY" | "IOC";
  /** signal (an entry or a strategy's exit), stop_loss or take_profit (a bracket's exits). */
  purpose: string;
  /** A bracket exit's entry. */
  parentId: string | null;
  /** An entry's bracket, armed by its fill. */
  stopLoss: number | null;
  takeProfit: number | null;
  trailing: { amount: number; fraction: boolean } | null;
  placedAt: Timestamp;
  /** open_orders only: what its parts filled so far (partial fills; `quantity` rests). */
  filled?: number;
}

export type OrderEvent =
  | Envelope<"order_accepted", RestingOrder & { timestamp: Timestamp }>
  | Envelope<"order_triggered", RestingOrder & { timestamp: Timestamp; triggerPrice: number }>
  | Envelope<"order_cancelled" | "order_expired", RestingOrder & { timestamp: Timestamp; reason: string }>
  | Envelope<"order_replaced", RestingOrder & {
      timestamp: Timestamp;
      previous: { quantity: number; limitPrice: number | null; stopPrice: number | null };
    }>
  /** A part filled (partial fills): `quantity` is what rests now, the part `filledQuantity`. */
  | Envelope<"order_partially_filled", RestingOrder & {
      timestamp: Timestamp;
      filledQuantity: number;
      fillPrice: number;
    }>;

export interface BackoffOptions {
  /** First retry delay (default 500 ms). */
  initialMs: number;
  /** Longest delay between retries (default 10000 ms). */
  maxMs: number;
  /** Growth per failed attempt (default 2). */
  factor: number;
  /** Fraction of the delay taken off at random, 0 to 1 (default 0.3). */
  jitter: number;
}

export interface WebSocketServiceOptions {
  /** Default ws://localhost:8082. */
  orchestratorUrl?: string;
  /** Default ws://localhost:3002/ws; null: no risk connection (no kill switch, no risk status). */
  riskUrl?: string | null;
  /** Default ws://localhost:3001/ws; null: no market data connection (no quotes). */
  marketDataUrl?: string | null;
  /** Sent as the first message of every connection when the daemon requires tokens. */
  token?: string | null;
  backoff?: Partial<BackoffOptions>;
  /** How long a command waits for its reply (default 15000 ms). */
  requestTimeoutMs?: number;
  /** Connect in the constructor (default true); otherwise call connect(). */
  autoConnect?: boolean;
}

/**
 * idle: not started; connecting: first attempt; connected: open and the server
 * has spoken; reconnecting: lost, retrying with backoff; closed: close() was
 * called or the token was refused (no retry).
 */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

export interface ServerConnectionStatus {
  state: ConnectionState;
  url: string;
  /** Failed attempts since the last successful connection. */
  attempt: number;
  /** Delay before the next attempt while reconnecting, else null. */
  retryInMs: number | null;
  lastClose: { code: number; reason: string; wasClean: boolean } | null;
  epoch: number | null;
  lastSeq: number | null;
  /** The last journal position seen: a resume after a daemon restart replays what follows it. */
  position: number | null;
}

export interface ConnectionStatus {
  /** connected when every configured connection is; reconnecting when any is retrying. */
  state: ConnectionState;
  /** isConnected(): the orchestrator connection is open. */
  connected: boolean;
  servers: Partial<Record<ServerName, ServerConnectionStatus>>;
}

export type ServiceErrorCode =
  | "timeout"
  | "connection_lost"
  | "not_connected"
  | "not_configured"
  | "closed"
  | "authentication_failed"
  | string; // an error reply's code: unknown_strategy, invalid_transition, ...

/** Rejection of a command: the server's error reply, a timeout or a lost connection. */
export declare class ServiceError extends Error {
  constructor(code: ServiceErrorCode, message: string, reply?: ErrorMessage | null, requestType?: string | null);
  readonly code: ServiceErrorCode;
  /** The error reply, when the server sent one. */
  readonly reply: ErrorMessage | null;
  readonly requestType: string | null;
}

export declare const DEFAULT_URLS: Readonly<{
  orchestratorUrl: string;
  riskUrl: string;
  marketDataUrl: string;
}>;
export declare const DEFAULT_BACKOFF: Readonly<BackoffOptions>;
export declare const DEFAULT_REQUEST_TIMEOUT_MS: number;

export interface ServerMessage {
  server: ServerName;
  message: Envelope;
}

export declare class WebSocketService {
  constructor(options?: WebSocketServiceOptions);

  /** Connection status of the service and of each server; replays the current one. */
  readonly connection$: ServiceStream<ConnectionStatus>;
  /** The execution service's status, from 8082; replays the latest. */
  readonly executionStatus$: ServiceStream<ExecutionStatusData>;
  /** A server could not replay what was missed (e.g. the daemon restarted) and sent a snapshot. */
  readonly resync$: ServiceStream<ResyncNotice>;

  connect(): void;
  close(): void;
  /** Whether the orchestrator connection (8082) is open and live. */
  isConnected(): boolean;
  connectionStatus(): ConnectionStatus;

  /** Signals of one strategy, or of every strategy when no id is given. */
  getStrategySignals(strategyId?: string): ServiceStream<StrategySignal>;
  /** Trades (FILLED and REJECTED) of one strategy, or of every strategy. */
  getStrategyTrades(strategyId?: string): ServiceStream<StrategyTrade>;
  /** Status lists and lifecycle notifications of every strategy. */
  getStrategyUpdates(): ServiceStream<StrategyUpdate>;
  /** 8082's resting order lifecycle: order_accepted, _triggered, _cancelled, _replaced, _expired. */
  getOrderEvents(): ServiceStream<OrderEvent>;
  /** 3002's risk events. */
  getRiskEvents(): ServiceStream<RiskEvent>;
  /** 8082's backtest_job (each state of every job) and backtest_progress. */
  getBacktestUpdates(): ServiceStream<BacktestUpdate>;
  /** 8082's sweep_job (each state of every sweep) and sweep_progress. */
  getSweepUpdates(): ServiceStream<SweepUpdate>;
  /** Every message of every server. */
  getMessages(): ServiceStream<ServerMessage>;
  /** Every message of one server. */
  getMessages(server: ServerName): ServiceStream<Envelope>;
  /** Quotes of a symbol (3001), subscribed while anyone listens; re-subscribed after a reconnect. */
  getQuotes(symbol: string): ServiceStream<Quote>;
  /** Closed bars of a symbol at a resolution (3001). */
  getBars(symbol: string, resolution: Resolution): ServiceStream<Bar>;

  /** Sends a command to a server; resolves with the reply that carries its requestId. */
  request(server: ServerName, command: { type: string; [field: string]: unknown }, timeoutMs?: number): Promise<Envelope>;
  /** The whole catalog, STOPPED strategies included (strategy_list). */
  getStrategies(): Promise<StrategyEntry[]>;
  /** Every strategy that is not STOPPED (strategy_status_list). */
  getActiveStrategies(): Promise<StrategyEntry[]>;
  /** Each symbol of the feed with its price grid (instruments). */
  getInstruments(): Promise<Instrument[]>;
  /** The journal's last trades and signals, oldest first (recent_activity); join live ones by id. */
  getRecentActivity(limit?: number): Promise<RecentActivity>;
  /** The last closed bars of a symbol at a resolution (3001's bars), oldest first. */
  getRecentBars(symbol: string, resolution: Resolution, limit?: number): Promise<Bar[]>;
  startStrategy(strategyId: string, config?: Partial<StrategyConfig>): Promise<StrategyStartedMessage>;
  pauseStrategy(strategyId: string): Promise<StrategyPausedMessage>;
  stopStrategy(strategyId: string): Promise<StrategyStoppedMessage>;
  /** The resting orders (of one strategy, or every one), as the committed events left them. */
  getOpenOrders(strategyId?: string): Promise<RestingOrder[]>;
  /** Cancels a resting order; rejects with order_not_found when none has that id. */
  cancelOrder(orderId: string): Promise<OrderEvent>;
  /** Submits a backtest job; resolves with its backtest_job (pending), described. */
  runBacktest(strategyId: string, source: BacktestSource, options?: BacktestRunOptions): Promise<BacktestJob>;
  cancelBacktest(jobId: string): Promise<BacktestJob>;
  /** Every job remembered, oldest first, results with their counts only. */
  getBacktests(): Promise<BacktestJob[]>;
  /** One job with its whole result as kept. */
  getBacktest(jobId: string): Promise<BacktestJob>;
  /** One page of a completed job's full report (README: get_backtest_report). */
  getBacktestReport(jobId: string, offset?: number, tradeOffset?: number): Promise<Record<string, unknown>>;
  getBacktestOptions(): Promise<BacktestOptions>;
  /** Submits a sweep; resolves with its sweep_job (pending), described. */
  runSweep(command: SweepCommand): Promise<SweepJob>;
  cancelSweep(jobId: string): Promise<SweepJob>;
  /** Every sweep the daemon remembers, oldest first, each result without its trials. */
  getSweeps(): Promise<SweepJob[]>;
  /** One sweep with its whole result. */
  getSweep(jobId: string): Promise<SweepJob>;
  getRiskStatus(): Promise<RiskStatus>;
  /** Engages the kill switch; every server then announces execution_service_status STOPPED. */
  haltTrading(reason: string, options?: { blockAll?: boolean }): Promise<KillSwitchState>;
  /** Releases the kill switch (rejects with invalid_transition when not halted). */
  resumeTrading(reason?: string): Promise<KillSwitchState>;
}
