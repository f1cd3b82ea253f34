// The Backtests view: run a catalog strategy over the synthetic feed or a history file
// with its params, watch its progress, read its statistics, equity, drawdown and trades,
// and go back to any job the daemon remembers. Everything goes through the
// WebSocketService the live view made (8082's run_backtest, backtest_job,
// backtest_progress, get_backtests, get_backtest, get_backtest_options, cancel_backtest);
// the form's bounds are the daemon's (get_backtest_options, config.json's startConfig),
// and what it still refuses is shown next to the form.

const DAY_SECONDS = 86400;
const SELECTED_KEY = "orchestrator-backtest"; // the job shown, kept across a reload
const CHART_OPTIONS = {
  autoSize: true,
  layout: { background: { color: "transparent" }, textColor: "#8b949e" },
  grid: { vertLines: { color: "#21262d" }, horzLines: { color: "#21262d" } },
  rightPriceScale: { borderColor: "#30363d" },
  timeScale: { borderColor: "#30363d", timeVisible: true },
};
const EQUITY_COLOR = "#d29922";
const HOLD_COLOR = "#8b949e";
const DRAWDOWN_COLOR = "#f85149";
// Figures of the run config, checked with start_strategy's bounds (config.json).
const RUN_NUMBERS = ["maxPositionValue", "stopLossPercentage"];
const PERCENT_FIELDS = new Set(["stopLossPercentage"]); // typed in %, a fraction on the wire
// The per-symbol table of an account of several symbols: the CLI's SYMBOL_COLUMNS
// (gateways/client/backtest_text.py), each a figure of the symbol's statistics.
const SYMBOL_COLUMNS = [
  ["Trades", "trade_count", "count"],
  ["Win rate", "win_rate_pct", "pct"],
  ["Return", "return_pct", "pct"],
  ["Buy & hold", "buy_and_hold_return_pct", "pct"],
  ["Max. drawdown", "max_drawdown_pct", "pct"],
  ["Sharpe", "sharpe_ratio", "ratio"],
  ["Profit factor", "profit_factor", "ratio"],
];

const $ = (id) => document.getElementById(id);

const bt = {
  service: null,
  config: null,
  token: null,
  options: null, // backtest_options
  jobs: new Map(), // jobId -> backtest_job data, described
  results: new Map(), // jobId -> the whole result (statistics, trades, series)
  progress: new Map(), // jobId -> backtest_progress data
  asked: new Set(), // jobIds whose get_backtest is in flight
  selected: sessionStorage.getItem(SELECTED_KEY),
  connected: false,
  submitting: false,
  cancelling: false,
  charts: null,
};

/** Wires the view to the service; called once by the dashboard's start-up. */
export function startBacktests(service, config, token) {
  Object.assign(bt, { service, config, token });
  setupViews();
  setupForm();
  service.getBacktestUpdates().subscribe((message) => {
    if (message.type === "backtest_progress") onProgress(message.data);
    else onJobState(message.data);
  });
  service.connection$.subscribe(onConnection);
}

// ---------------------------------------------------------------- the two views

function setupViews() {
  window.addEventListener("hashchange", showView);
  showView();
}

function showView() {
  const wanted = location.hash === "#backtests" ? "backtests" : "live";
  for (const view of document.querySelectorAll("main[data-view]")) view.hidden = view.dataset.view !== wanted;
  for (const tab of document.querySelectorAll("nav.views a")) {
    if (tab.dataset.view === wanted) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  document.body.dataset.view = wanted;
}

// ---------------------------------------------------------------- the daemon

function onConnection(status) {
  const up = status.servers.orchestrator.state === "connected";
  const cameBack = up && !bt.connected;
  bt.connected = up;
  $("backtests-view").dataset.stale = String(!up);
  $("bt-stale").hidden = up;
  renderRunButton();
  renderJob();
  if (cameBack) loadFromDaemon();
}

// On every (re)connection: the form's bounds and the daemon's jobs (after a restart it
// knows none of the earlier ones: the list is the daemon's, not the page's).
async function loadFromDaemon() {
  try {
    const [options, jobs] = await Promise.all([bt.service.getBacktestOptions(), bt.service.getBacktests()]);
    bt.options = options;
    fillForm();
    renderRunButton();
    const known = new Set(jobs.map((job) => job.jobId));
    for (const id of [...bt.jobs.keys()]) if (!known.has(id)) forget(id);
    for (const job of jobs) bt.jobs.set(job.jobId, { ...bt.jobs.get(job.jobId), ...job });
    if (bt.selected && !bt.jobs.has(bt.selected)) select(null);
    renderJobs();
    renderJob();
  } catch (error) {
    showFormError(`could not load the backtests: ${error.message}`);
  }
}

function forget(id) {
  bt.jobs.delete(id);
  bt.results.delete(id);
  bt.progress.delete(id);
}

function onJobState(data) {
  const job = { ...bt.jobs.get(data.jobId), ...data };
  bt.jobs.set(data.jobId, job);
  if (data.result?.statistics) bt.results.set(data.jobId, data.result);
  // A broadcast says the state only: a job started elsewhere is asked what it runs.
  if (job.strategyId === undefined) fetchJob(data.jobId);
  renderJobs();
  if (data.jobId === bt.selected) renderJob();
}

function onProgress(data) {
  bt.progress.set(data.jobId, data);
  if (data.jobId === bt.selected) renderProgress(bt.jobs.get(data.jobId));
  const cell = document.querySelector(`#bt-job-rows tr[data-job-id="${data.jobId}"] .badge`);
  if (cell && bt.jobs.get(data.jobId)?.status === "running") cell.textContent = `running ${percent(data.fraction)}`;
}

// One job as the daemon keeps it: its description, and its whole result when kept.
async function fetchJob(id) {
  if (bt.asked.has(id)) return;
  bt.asked.add(id);
  try {
    const job = await bt.service.getBacktest(id);
    bt.jobs.set(id, { ...bt.jobs.get(id), ...job });
    if (job.result) bt.results.set(id, job.result);
    renderJobs();
    if (id === bt.selected) renderJob();
  } catch (error) {
    if (error.code === "unknown_job") forget(id);
    renderJobs();
  } finally {
    bt.asked.delete(id);
  }
}

// ---------------------------------------------------------------- the form

function setupForm() {
  $("bt-form").addEventListener("submit", onRun);
  $("bt-strategy").addEventListener("change", fillStrategyFields);
  for (const radio of document.querySelectorAll("input[name=bt-source]")) radio.addEventListener("change", showSource);
  $("bt-cancel").addEventListener("click", onCancel);
  $("bt-job-rows").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-job-id]");
    if (row) select(row.dataset.jobId);
  });
  $("bt-report").addEventListener("click", onReportClick);
  const resolution = $("bt-resolution");
  resolution.append(new Option("the strategy's", ""));
  for (const name of bt.config.startConfig.resolutions) resolution.append(new Option(name, name));
}

function fillForm() {
  const { strategies, symbols, synthetic, initialCapital, files } = bt.options;
  const select = $("bt-strategy");
  const chosen = select.value;
  select.replaceChildren(...strategies.map((s) => new Option(s.name, s.id)));
  if (strategies.some((s) => s.id === chosen)) select.value = chosen;
  const symbol = $("bt-symbol");
  const chosenSymbol = symbol.value;
  symbol.replaceChildren(...symbols.map((name) => new Option(name, name)));
  if (symbols.includes(chosenSymbol)) symbol.value = chosenSymbol;
  $("bt-days").placeholder = trimmed(synthetic.durationSeconds.default / DAY_SECONDS);
  $("bt-seed").placeholder = String(synthetic.seed.default);
  $("bt-capital").placeholder = "max position value";
  $("bt-capital").title = initialCapital.description ?? "";
  const fileRadio = document.querySelector("input[name=bt-source][value=file]");
  fileRadio.disabled = files === null;
  fileRadio.parentElement.title = files === null ? "file backtests are off: set data_dir in the [jobs] section of the config" : "";
  if (files === null && fileRadio.checked) document.querySelector("input[name=bt-source][value=synthetic]").checked = true;
  $("bt-files").replaceChildren(...(files ?? []).map((name) => new Option(name)));
  // After a reconnection what was typed stays; a new choice of strategy starts afresh.
  if ($("bt-params").dataset.strategy !== select.value) fillStrategyFields();
  showSource();
}

function strategyOption() {
  return bt.options?.strategies.find((s) => s.id === $("bt-strategy").value) ?? null;
}

// The chosen strategy's params, at their catalog values, each with its model's bounds.
function fillStrategyFields() {
  const strategy = strategyOption();
  if (!strategy) return;
  const symbol = $("bt-symbol");
  if (strategy.symbols.some((s) => bt.options.symbols.includes(s))) {
    symbol.value = strategy.symbols.find((s) => bt.options.symbols.includes(s));
  }
  $("bt-resolution").options[0].textContent = `the strategy's (${strategy.dataResolution})`;
  const fields = Object.entries(strategy.paramBounds).map(([name, bounds]) => paramField(name, bounds, strategy));
  $("bt-params").replaceChildren(...fields);
  $("bt-params").dataset.strategy = strategy.id;
  if (strategy.error) showFormError(`${strategy.name} cannot run: ${strategy.error}`);
  else showFormError(null);
}

function paramField(name, bounds, strategy) {
  const label = document.createElement("label");
  const input = document.createElement("input");
  const value = strategy.params[name] ?? bounds.default;
  input.dataset.param = name;
  input.dataset.testid = `bt-param-${name}`;
  if (bounds.type === "boolean") {
    input.type = "checkbox";
    input.checked = Boolean(value);
  } else {
    if (bounds.type === "integer" || bounds.type === "number") input.inputMode = bounds.type === "integer" ? "numeric" : "decimal";
    input.value = value === undefined || value === null ? "" : String(value);
  }
  label.title = [bounds.description, rangeText(bounds)].filter(Boolean).join(" ");
  label.append(`${name.replaceAll("_", " ")} `, input);
  return label;
}

function showSource() {
  const kind = document.querySelector("input[name=bt-source]:checked").value;
  for (const group of document.querySelectorAll(".bt-group[data-source]")) group.hidden = group.dataset.source !== kind;
}

// The command the form describes, or the first problem with it (bounds are the daemon's).
function readForm() {
  const strategy = strategyOption();
  if (!strategy) return { problem: "the strategies have not loaded yet" };
  const options = {};
  const source = readSource(options);
  if (source.problem) return source;
  const capital = readNumber("Capital", $("bt-capital").value, bt.options.initialCapital);
  if (capital.problem) return capital;
  if (capital.value !== undefined) options.initialCapital = capital.value;
  const config = {};
  for (const name of RUN_NUMBERS) {
    const input = $(`bt-${name}`);
    const scale = PERCENT_FIELDS.has(name) ? 100 : 1;
    const read = readNumber(labelOf(input), input.value, bt.config.startConfig.numbers[name], scale);
    if (read.problem) return read;
    if (read.value !== undefined) config[name] = read.value;
  }
  if (Object.keys(config).length) options.config = config;
  const params = readParams(strategy);
  if (params.problem) return params;
  if (Object.keys(params.values).length) options.params = params.values;
  return { strategyId: strategy.id, source: source.value, options };
}

function readSource(options) {
  if (document.querySelector("input[name=bt-source]:checked").value === "file") {
    const path = $("bt-path").value.trim();
    if (!path) return { problem: "File: name a file or directory of the data directory" };
    const symbol = $("bt-file-symbol").value.trim().toUpperCase();
    if (symbol) options.symbol = symbol;
    return { value: { kind: "file", path } };
  }
  const source = { kind: "synthetic" };
  if ($("bt-resolution").value) source.resolution = $("bt-resolution").value;
  const { durationSeconds, seed } = bt.options.synthetic;
  const days = readNumber("Days", $("bt-days").value, durationSeconds, 1 / DAY_SECONDS);
  if (days.problem) return days;
  if (days.value !== undefined) source.durationSeconds = days.value;
  const seeded = readNumber("Seed", $("bt-seed").value, seed);
  if (seeded.problem) return seeded;
  if (seeded.value !== undefined) source.seed = seeded.value;
  options.symbol = $("bt-symbol").value;
  return { value: source };
}

// Only the params that differ from the catalog's go on the wire: a job says what it changed.
function readParams(strategy) {
  const values = {};
  for (const input of $("bt-params").querySelectorAll("input[data-param]")) {
    const name = input.dataset.param;
    const bounds = strategy.paramBounds[name];
    const current = strategy.params[name] ?? bounds.default;
    let value;
    if (bounds.type === "boolean") {
      value = input.checked;
    } else if (bounds.type === "integer" || bounds.type === "number") {
      const read = readNumber(name.replaceAll("_", " "), input.value, bounds);
      if (read.problem) return read;
      value = read.value;
    } else {
      value = input.value.trim() === "" ? undefined : input.value.trim(); // text: the model checks it
    }
    if (value !== undefined && value !== current) values[name] = value;
  }
  return { values };
}

// A typed number checked against JSON-schema bounds: the wire's value is typed / scale
// (a percentage typed, a fraction sent), the bounds shown as typed; empty: undefined,
// the default applies.
function readNumber(label, text, bounds = {}, scale = 1) {
  const trimmedText = text.trim();
  if (trimmedText === "") return { value: undefined };
  const typed = Number(trimmedText);
  if (!Number.isFinite(typed)) return { problem: `${label}: "${trimmedText}" is not a number` };
  const value = typed / scale;
  const shown = (bound) => trimmed(bound * scale);
  if (bounds.type === "integer" && !Number.isInteger(value)) return { problem: `${label}: a whole number` };
  if (bounds.minimum !== undefined && value < bounds.minimum) return { problem: `${label}: at least ${shown(bounds.minimum)}` };
  if (bounds.exclusiveMinimum !== undefined && value <= bounds.exclusiveMinimum) return { problem: `${label}: more than ${shown(bounds.exclusiveMinimum)}` };
  if (bounds.maximum !== undefined && value > bounds.maximum) return { problem: `${label}: at most ${shown(bounds.maximum)}` };
  if (bounds.exclusiveMaximum !== undefined && value >= bounds.exclusiveMaximum) return { problem: `${label}: less than ${shown(bounds.exclusiveMaximum)}` };
  return { value };
}

function rangeText(bounds) {
  const low = bounds.minimum ?? bounds.exclusiveMinimum;
  const high = bounds.maximum ?? bounds.exclusiveMaximum;
  if (low === undefined && high === undefined) return "";
  return `(${low ?? "…"} to ${high ?? "…"})`;
}

function labelOf(input) {
  return input.parentElement.firstChild.textContent.trim();
}

async function onRun(event) {
  event.preventDefault();
  const { strategyId, source, options, problem } = readForm();
  if (problem) return showFormError(problem);
  bt.submitting = true;
  renderRunButton();
  try {
    const job = await bt.service.runBacktest(strategyId, source, options);
    bt.jobs.set(job.jobId, { ...bt.jobs.get(job.jobId), ...job });
    showFormError(null);
    select(job.jobId);
    renderJobs();
  } catch (error) {
    showFormError(`the daemon refused: ${error.message}`);
  } finally {
    bt.submitting = false;
    renderRunButton();
  }
}

function renderRunButton() {
  const button = $("bt-run");
  button.disabled = !bt.connected || bt.submitting || bt.options === null;
  button.title = bt.connected ? "" : "the daemon does not answer";
}

function showFormError(text) {
  const element = $("bt-error");
  element.hidden = !text;
  element.textContent = text ?? "";
}

// ---------------------------------------------------------------- the chosen job

function select(id) {
  bt.selected = id;
  if (id) sessionStorage.setItem(SELECTED_KEY, id);
  else sessionStorage.removeItem(SELECTED_KEY);
  renderJobs();
  renderJob();
}

async function onCancel() {
  const id = bt.selected;
  bt.cancelling = true;
  renderJob();
  try {
    await bt.service.cancelBacktest(id);
  } catch (error) {
    $("bt-job-error").hidden = false;
    $("bt-job-error").textContent = `cancel: ${error.message}`;
  } finally {
    bt.cancelling = false;
    renderJob();
  }
}

function renderJob() {
  const panel = $("bt-job");
  const job = bt.selected ? bt.jobs.get(bt.selected) : undefined;
  panel.dataset.jobId = job?.jobId ?? "";
  panel.dataset.status = job?.status ?? "";
  $("bt-job-title").textContent = job ? describe(job) : "No job chosen: run one, or pick one below";
  const badge = $("bt-job-status");
  badge.textContent = job?.status ?? "";
  badge.className = `badge job-${job?.status ?? "none"}`;
  const open = job?.status === "pending" || job?.status === "running";
  $("bt-cancel").hidden = !open;
  $("bt-cancel").disabled = !bt.connected || bt.cancelling;
  if (!bt.cancelling) $("bt-job-error").hidden = job?.status !== "failed";
  if (job?.status === "failed") $("bt-job-error").textContent = `failed: ${job.error}`;
  renderProgress(job);
  renderResult(job);
}

function renderProgress(job) {
  const box = $("bt-progress-box");
  const progress = job ? bt.progress.get(job.jobId) : undefined;
  const open = job?.status === "pending" || job?.status === "running";
  box.hidden = !open && !(job?.status === "completed" && progress);
  if (box.hidden) return;
  const fraction = job.status === "completed" ? 1 : progress?.fraction ?? 0;
  const bar = $("bt-progress");
  bar.value = fraction;
  bar.dataset.fraction = String(fraction);
  const text = $("bt-progress-text");
  if (job.status === "pending") text.textContent = "waiting for a worker";
  else if (!progress) text.textContent = "reading its history";
  else text.textContent = `${percent(fraction)} · ${grouped(progress.barsDone)} / ${grouped(progress.barsTotal)} bars`;
}

function renderResult(job) {
  const results = $("bt-results");
  const report = $("bt-report");
  if (job?.status !== "completed") {
    results.hidden = true;
    report.hidden = true;
    return;
  }
  const result = bt.results.get(job.jobId) ?? job.result ?? {};
  if (!result.statistics && !bt.results.has(job.jobId)) fetchJob(job.jobId);
  results.hidden = false;
  report.hidden = !result.statistics;
  report.href = `/api/backtests/${encodeURIComponent(job.jobId)}/report.html`;
  renderStatistics(result);
  renderPerSymbol(result);
  renderCurves(result);
  renderTrades(result);
}

// Several symbols on one account: one row per symbol (its return is its P&L over the
// account's capital, so the symbols' returns add up to the account's).
function renderPerSymbol(result) {
  const parts = result.per_symbol ?? [];
  $("bt-per-symbol-box").hidden = parts.length === 0;
  const head = ["Symbol", ...SYMBOL_COLUMNS.map(([label]) => label)].map((label, index) => {
    const cell = document.createElement("th");
    cell.textContent = label;
    if (index) cell.className = "num";
    return cell;
  });
  $("bt-per-symbol-head").replaceChildren(...head);
  $("bt-per-symbol-rows").replaceChildren(...parts.map((part) => {
    const row = document.createElement("tr");
    row.dataset.symbol = part.symbol;
    const name = document.createElement("td");
    name.textContent = part.symbol;
    row.append(name);
    for (const [, key, unit] of SYMBOL_COLUMNS) {
      const cell = document.createElement("td");
      cell.className = "num";
      cell.dataset.key = key;
      cell.textContent = part.statistics ? figure(part.statistics[key], unit) : "-";
      row.append(cell);
    }
    return row;
  }));
}

function renderStatistics(result) {
  const rows = (bt.options?.statistics ?? []).map(({ label, key, unit }) => {
    const row = document.createElement("tr");
    const head = document.createElement("th");
    const cell = document.createElement("td");
    head.textContent = label;
    cell.textContent = result.statistics ? figure(result.statistics[key], unit) : "-";
    cell.className = "num";
    row.dataset.key = key;
    row.append(head, cell);
    return row;
  });
  if (!result.statistics) rows.unshift(keptNote());
  $("bt-statistics-rows").replaceChildren(...rows);
}

function keptNote() {
  const row = document.createElement("tr");
  const cell = document.createElement("td");
  cell.colSpan = 2;
  cell.className = "small";
  cell.textContent = "The daemon keeps the full report of its newest jobs only ([jobs] max_kept_reports): this one has its counts.";
  row.append(cell);
  return row;
}

function charts() {
  if (bt.charts) return bt.charts;
  const LC = window.LightweightCharts;
  const equity = LC.createChart($("bt-equity"), CHART_OPTIONS);
  const drawdown = LC.createChart($("bt-drawdown"), CHART_OPTIONS);
  bt.charts = {
    equity,
    drawdown,
    equityLine: equity.addSeries(LC.LineSeries, { color: EQUITY_COLOR, lineWidth: 2, title: "equity" }),
    holdLine: equity.addSeries(LC.LineSeries, { color: HOLD_COLOR, lineWidth: 1, title: "buy & hold" }),
    drawdownArea: drawdown.addSeries(LC.AreaSeries, {
      lineColor: DRAWDOWN_COLOR, topColor: "rgba(248,81,73,0.05)", bottomColor: "rgba(248,81,73,0.4)",
      lineWidth: 1, title: "drawdown %",
    }),
  };
  return bt.charts;
}

// The result's curves (downsampled by the daemon, each stretch's extremes kept).
function renderCurves(result) {
  const series = result.series ?? { time: [], equity: [], drawdown_pct: [], buy_and_hold: [] };
  const times = series.time.map((time) => Date.parse(time) / 1000);
  const points = (values) => times.map((time, index) => ({ time, value: values[index] }));
  const chart = charts();
  chart.equityLine.setData(points(series.equity));
  chart.holdLine.setData(points(series.buy_and_hold));
  chart.drawdownArea.setData(points(series.drawdown_pct));
  chart.equity.timeScale().fitContent();
  chart.drawdown.timeScale().fitContent();
  $("bt-equity").dataset.points = String(times.length);
  $("bt-drawdown").dataset.points = String(times.length);
  $("bt-points").textContent = result.series_points
    ? `${grouped(times.length)} points of ${grouped(result.series_points)} bars (each stretch's lowest and highest kept)`
    : "";
}

function renderTrades(result) {
  const trades = result.trades ?? [];
  const several = (result.symbols?.length ?? 1) > 1;
  $("bt-trade-symbol").hidden = !several;
  const rows = trades.map((trade, index) => tradeRow(trade, String(index + 1), several));
  // One symbol: its open position; several: one per symbol held (open_trade is null).
  const open = several ? result.open_trades ?? [] : result.open_trade ? [result.open_trade] : [];
  for (const trade of open) rows.push(tradeRow(trade, "open", several));
  $("bt-trade-rows").replaceChildren(...rows);
  const total = result.total_trades ?? trades.length;
  $("bt-trade-count").textContent = result.trades_truncated
    ? `the first ${grouped(trades.length)} of ${grouped(total)}; the HTML report has them all`
    : `${grouped(trades.length)} closed${open.length ? `, ${open.length === 1 ? "one" : grouped(open.length)} open` : ""}`;
}

function tradeRow(trade, number, withSymbol) {
  const row = document.createElement("tr");
  row.dataset.testid = "bt-trade-row";
  const cells = [
    [number, ""],
    ...(withSymbol ? [[trade.symbol, "symbol"]] : []),
    [trade.side, ""],
    [grouped(trade.quantity), "num"],
    [shortTime(trade.entry_time), "time"],
    [priceText(trade.entry_price), "num"],
    [shortTime(trade.exit_time), "time"],
    [priceText(trade.exit_price), "num"],
    [signedFixed(trade.pnl, 2), "num pnl"],
    [`${signedFixed(trade.pnl_pct, 2)}%`, "num pnl"],
    [trade.exit_reason, ""],
  ];
  for (const [text, className] of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    cell.className = className;
    row.append(cell);
  }
  row.className = trade.pnl > 0 ? "gain" : trade.pnl < 0 ? "loss" : "";
  return row;
}

// With tokens the report needs an Authorization header, which a link cannot send: the
// page fetches it and saves the file (it needs no network once saved).
async function onReportClick(event) {
  if (!bt.config.authRequired) return;
  event.preventDefault();
  const link = event.currentTarget;
  try {
    const response = await fetch(link.href, { headers: { Authorization: `Bearer ${bt.token}` } });
    if (!response.ok) throw new Error(`${response.status}: ${(await response.text()).trim()}`);
    const saver = document.createElement("a");
    saver.href = URL.createObjectURL(await response.blob());
    saver.download = `backtest-${bt.selected}.html`;
    saver.click();
    setTimeout(() => URL.revokeObjectURL(saver.href), 60_000);
  } catch (error) {
    $("bt-job-error").hidden = false;
    $("bt-job-error").textContent = `the report: ${error.message}`;
  }
}

// ---------------------------------------------------------------- the jobs

function renderJobs() {
  const jobs = [...bt.jobs.values()].reverse(); // the daemon lists oldest first
  $("bt-jobs-empty").hidden = jobs.length > 0;
  $("bt-job-rows").replaceChildren(...jobs.map(jobRow));
}

function jobRow(job) {
  const row = document.createElement("tr");
  row.dataset.testid = "bt-job-row";
  row.dataset.jobId = job.jobId;
  row.dataset.status = job.status;
  row.tabIndex = 0;
  if (job.jobId === bt.selected) row.setAttribute("aria-selected", "true");
  const result = job.result ?? {};
  const progress = bt.progress.get(job.jobId);
  const status = job.status === "running" && progress ? `running ${percent(progress.fraction)}` : job.status;
  const cells = [
    [job.createdAt ? shortTime(job.createdAt) : "", "time"],
    [job.strategyName ? `${job.strategyName} · ${symbolsText(job)}` : job.jobId, ""],
    [job.source ? sourceText(job.source) : "", ""],
    [null, ""],
    [job.status === "completed" ? grouped(result.total_trades) : "", "num"],
    [job.status === "completed" ? percent(result.total_return, true) : "", "num"],
  ];
  cells.forEach(([text, className], index) => {
    const cell = document.createElement("td");
    cell.className = className;
    if (index === 3) {
      const badge = document.createElement("span");
      badge.className = `badge job-${job.status}`;
      badge.textContent = status;
      badge.title = job.error ?? "";
      cell.append(badge);
    } else {
      cell.textContent = text;
    }
    row.append(cell);
  });
  const ret = row.children[5];
  if (job.status === "completed") ret.classList.add(result.total_return > 0 ? "gain" : result.total_return < 0 ? "loss" : "flat");
  return row;
}

function describe(job) {
  if (!job.strategyName) return `job ${job.jobId}`;
  const params = Object.entries(job.params ?? {}).map(([name, value]) => `${name} ${value}`);
  return [`${job.strategyName} on ${symbolsText(job)}`, sourceText(job.source), params.join(", ")]
    .filter(Boolean)
    .join(" · ");
}

// Several symbols on one account are all named (symbols), one by symbol.
const symbolsText = (job) => (job.symbols ?? [job.symbol]).join(", ");

function sourceText(source) {
  if (source.kind === "files") return Object.values(source.paths).join(", ");
  if (source.kind !== "synthetic") return source.path;
  return `synthetic, ${duration(source.durationSeconds)} of ${source.resolution} bars, seed ${source.seed}`;
}

// ---------------------------------------------------------------- formatting (as the CLI)

const NUMBER_FORMATS = new Map();
function fixed(value, digits, signed = false) {
  const key = `${digits}:${signed}`;
  if (!NUMBER_FORMATS.has(key)) {
    NUMBER_FORMATS.set(key, new Intl.NumberFormat("en-US", {
      minimumFractionDigits: digits, maximumFractionDigits: digits, signDisplay: signed ? "exceptZero" : "auto",
    }));
  }
  return NUMBER_FORMATS.get(key).format(value === 0 ? 0 : value);
}

const grouped = (value) => (typeof value === "number" ? value.toLocaleString("en-US") : "-");
const trimmed = (value) => String(Number(value.toFixed(6)));
const signedFixed = (value, digits) => (typeof value === "number" ? fixed(value, digits, true) : "-");
const priceText = (value) =>
  typeof value === "number" ? value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 5 }) : "-";
const shortTime = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "-");

// A fraction as a percentage with up to two decimals, as the CLI's percent().
function percent(fraction, signed = false) {
  if (typeof fraction !== "number" || !Number.isFinite(fraction)) return "-";
  const value = Math.round(fraction * 10000) / 100;
  const text = value.toLocaleString("en-US", { maximumFractionDigits: 2, signDisplay: signed ? "exceptZero" : "auto" });
  return `${value === 0 && signed ? "+0" : text}%`;
}

const DURATION_UNITS = [[86400, "day"], [3600, "h"], [60, "min"], [1, "s"]];
// Seconds a person reads, as the CLI's duration(): 93,784 → "1 day 2 h 3 min 4 s".
function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "-";
  if (Math.abs(seconds) < 1) return `${seconds} s`;
  let rest = Math.round(Math.abs(seconds));
  const parts = [];
  for (const [size, unit] of DURATION_UNITS) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count) parts.push(unit === "day" ? `${grouped(count)} ${count === 1 ? "day" : "days"}` : `${grouped(count)} ${unit}`);
  }
  return (seconds < 0 ? "-" : "") + parts.join(" ");
}

// One figure of the statistics table in its unit (the CLI's backtest_text._value).
function figure(value, unit) {
  if (unit === "time") return typeof value === "string" ? shortTime(value) : "-";
  if (typeof value !== "number" || !Number.isFinite(value)) return "-";
  if (unit === "duration") return duration(value);
  if (unit === "pct") return percent(value / 100);
  if (unit === "money") return fixed(value, 2);
  if (unit === "count") return grouped(value);
  return fixed(value, 3);
}
