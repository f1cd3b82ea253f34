// The sweeps of the Backtests view: search a catalog strategy's parameters (grid, random
// or TPE) on the daemon's Dask cluster, follow the trials, read the table and the heatmap
// of two parameters, and start the strategy live with the best trial's parameters.
// Everything goes through the WebSocketService (8082's run_sweep, cancel_sweep,
// get_sweeps, get_sweep, sweep_job, sweep_progress, start_strategy); the strategies and
// their params' bounds are get_backtest_options', as the backtest form's. What the
// daemon refuses is shown next to the form, in its words.

const SELECTED_KEY = "orchestrator-sweep"; // the sweep shown, kept across a reload
const DAY_SECONDS = 86400;
const GRID_STEPS = 4; // a pre-filled integer range has about this many steps
const NUMERIC = new Set(["integer", "number"]);
const OBJECTIVE_EXTRA = { key: "return_over_max_drawdown", label: "Return over max. drawdown" };
// The trials table: each row's figures beside its params (the rows' snake_case keys).
const FIGURE_COLUMNS = [
  ["value", "Objective"],
  ["total_trades", "Trades"],
  ["return_pct", "Return %"],
  ["sharpe_ratio", "Sharpe"],
  ["max_drawdown_pct", "Max DD %"],
  ["win_rate_pct", "Win %"],
];
const WORST = [248, 81, 73]; // the dashboard's loss red
const BEST = [63, 185, 80]; // and its gain green

const $ = (id) => document.getElementById(id);

const sw = {
  service: null,
  config: null,
  token: null,
  confirmAction: null,
  options: null, // backtest_options: the strategies and their params' bounds
  sweeps: new Map(), // jobId -> sweep_job data, described
  results: new Map(), // jobId -> the whole result (with its trials)
  progress: new Map(), // jobId -> sweep_progress data
  asked: new Set(), // jobIds whose get_sweep is in flight
  selected: sessionStorage.getItem(SELECTED_KEY),
  connected: false,
  submitting: false,
  sort: { key: "value", descending: null }, // null: the objective's own direction
  axes: null, // [x, y] chosen for the heatmap
};

/** Wires the sweeps to the service; called once by the dashboard's start-up. */
export function startSweeps(service, config, token, { confirmAction }) {
  Object.assign(sw, { service, config, token, confirmAction });
  setupForm();
  service.getSweepUpdates().subscribe((message) => {
    if (message.type === "sweep_progress") onProgress(message.data);
    else onSweepState(message.data);
  });
  service.connection$.subscribe(onConnection);
}

// ---------------------------------------------------------------- the daemon

function onConnection(status) {
  const up = status.servers.orchestrator.state === "connected";
  const cameBack = up && !sw.connected;
  sw.connected = up;
  renderRunButton();
  renderSweep();
  if (cameBack) loadFromDaemon();
}

// On every (re)connection: the strategies' bounds and the daemon's sweeps (the list is
// the daemon's: one it forgot is dropped, one it resumed after a restart is listed).
async function loadFromDaemon() {
  try {
    const [options, sweeps] = await Promise.all([sw.service.getBacktestOptions(), sw.service.getSweeps()]);
    sw.options = options;
    fillForm();
    const known = new Set(sweeps.map((sweep) => sweep.jobId));
    for (const id of [...sw.sweeps.keys()]) if (!known.has(id)) forget(id);
    for (const sweep of sweeps) sw.sweeps.set(sweep.jobId, { ...sw.sweeps.get(sweep.jobId), ...sweep });
    if (sw.selected && !sw.sweeps.has(sw.selected)) select(null);
    $("sw-list").dataset.loads = String(Number($("sw-list").dataset.loads) + 1); // each (re)load
    renderRunButton();
    renderSweeps();
    renderSweep();
  } catch (error) {
    showFormError(`could not load the sweeps: ${error.message}`);
  }
}

function forget(id) {
  sw.sweeps.delete(id);
  sw.results.delete(id);
  sw.progress.delete(id);
}

function onSweepState(data) {
  const sweep = { ...sw.sweeps.get(data.jobId), ...data };
  sw.sweeps.set(data.jobId, sweep);
  if (data.result?.trials) sw.results.set(data.jobId, data.result);
  // A broadcast says the state only: a sweep started elsewhere is asked what it searches.
  if (sweep.strategyId === undefined) fetchSweep(data.jobId);
  renderSweeps();
  if (data.jobId === sw.selected) renderSweep();
}

function onProgress(data) {
  sw.progress.set(data.jobId, data);
  if (data.jobId === sw.selected) renderProgress(sw.sweeps.get(data.jobId));
  const badge = document.querySelector(`#sw-rows tr[data-job-id="${data.jobId}"] .badge`);
  if (badge && sw.sweeps.get(data.jobId)?.status === "running") badge.textContent = `running ${trialsText(data)}`;
}

async function fetchSweep(id) {
  if (sw.asked.has(id)) return;
  sw.asked.add(id);
  try {
    const sweep = await sw.service.getSweep(id);
    sw.sweeps.set(id, { ...sw.sweeps.get(id), ...sweep });
    if (sweep.result?.trials || sweep.result?.windows) sw.results.set(id, sweep.result);
    renderSweeps();
    if (id === sw.selected) renderSweep();
  } catch (error) {
    if (error.code === "unknown_job") forget(id);
    renderSweeps();
  } finally {
    sw.asked.delete(id);
  }
}

// ---------------------------------------------------------------- the form

function setupForm() {
  $("sw-form").addEventListener("submit", onRun);
  $("sw-form").addEventListener("input", renderSize);
  $("sw-strategy").addEventListener("change", fillRanges);
  $("sw-method").addEventListener("change", showTrials);
  for (const radio of document.querySelectorAll("input[name=sw-source]")) radio.addEventListener("change", showSource);
  $("sw-cancel").addEventListener("click", onCancel);
  $("sw-start-live").addEventListener("click", onStartLive);
  $("sw-report").addEventListener("click", onReportClick);
  $("sw-rows").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-job-id]");
    if (row) select(row.dataset.jobId);
  });
  $("sw-trials-head").addEventListener("click", onSortClick);
  for (const axis of ["sw-heat-x", "sw-heat-y"]) $(axis).addEventListener("change", onAxisChange);
  const resolution = $("sw-resolution");
  resolution.append(new Option("the strategy's", ""));
  for (const name of sw.config.startConfig.resolutions) resolution.append(new Option(name, name));
  showTrials();
}

function fillForm() {
  const { strategies, symbols, statistics, synthetic, files } = sw.options;
  keepChoice($("sw-strategy"), strategies.map((s) => new Option(s.name, s.id)));
  keepChoice($("sw-symbol"), symbols.map((name) => new Option(name, name)));
  const metrics = [...statistics.filter((row) => row.unit !== "time"), OBJECTIVE_EXTRA];
  keepChoice($("sw-metric"), metrics.map((row) => new Option(row.label, row.key)), "sharpe_ratio");
  $("sw-days").placeholder = trimmed(synthetic.durationSeconds.default / DAY_SECONDS);
  $("sw-seed").placeholder = String(synthetic.seed.default);
  const fileRadio = document.querySelector("input[name=sw-source][value=file]");
  fileRadio.disabled = files === null;
  if (files === null && fileRadio.checked) document.querySelector("input[name=sw-source][value=synthetic]").checked = true;
  // After a reconnection what was typed stays; a new choice of strategy starts afresh.
  if ($("sw-ranges").dataset.strategy !== $("sw-strategy").value) fillRanges();
  showSource();
}

function keepChoice(select, options, fallback) {
  const chosen = select.value || fallback;
  select.replaceChildren(...options);
  if (options.some((option) => option.value === chosen)) select.value = chosen;
}

function strategyOption() {
  return sw.options?.strategies.find((s) => s.id === $("sw-strategy").value) ?? null;
}

// One row per parameter a sweep can vary (numbers and booleans), the first two varied,
// each range pre-filled around the catalog's value within the model's bounds.
function fillRanges() {
  const strategy = strategyOption();
  if (!strategy) return;
  if (strategy.symbols.some((s) => sw.options.symbols.includes(s))) {
    $("sw-symbol").value = strategy.symbols.find((s) => sw.options.symbols.includes(s));
  }
  const variable = Object.entries(strategy.paramBounds).filter(([, b]) => NUMERIC.has(b.type) || b.type === "boolean");
  const rows = variable.map(([name, bounds], index) => rangeRow(name, bounds, strategy.params[name] ?? bounds.default, index < 2));
  $("sw-ranges").replaceChildren(...rows);
  $("sw-ranges").dataset.strategy = strategy.id;
  showFormError(strategy.error ? `${strategy.name} cannot run: ${strategy.error}` : null);
  renderSize();
}

function rangeRow(name, bounds, value, varied) {
  const row = document.createElement("div");
  row.className = "sw-range";
  row.dataset.param = name;
  row.dataset.type = bounds.type;
  row.title = [bounds.description, boundsText(bounds)].filter(Boolean).join(" ");
  const vary = input("checkbox", `sw-vary-${name}`);
  vary.checked = varied;
  vary.dataset.role = "vary";
  const label = document.createElement("label");
  label.append(vary, ` ${name.replaceAll("_", " ")}`);
  row.append(label);
  if (bounds.type === "boolean") {
    const both = document.createElement("span");
    both.className = "small";
    both.textContent = "true and false";
    row.append(both);
    return row;
  }
  const [low, high, step] = prefilled(bounds, value);
  for (const [role, text] of [["low", low], ["high", high], ["step", step]]) {
    const field = input("text", `sw-${role}-${name}`);
    field.dataset.role = role;
    field.inputMode = bounds.type === "integer" ? "numeric" : "decimal";
    field.value = text;
    field.placeholder = role;
    field.setAttribute("aria-label", `${name} ${role}`);
    row.append(field);
  }
  return row;
}

function input(type, testid) {
  const element = document.createElement("input");
  element.type = type;
  element.dataset.testid = testid;
  return element;
}

// Half to twice the catalog's value, inside the model's bounds, in about GRID_STEPS steps.
function prefilled(bounds, value) {
  const center = typeof value === "number" && value !== 0 ? Math.abs(value) : 1;
  const floor = bounds.minimum ?? bounds.exclusiveMinimum ?? -Infinity;
  const ceiling = bounds.maximum ?? bounds.exclusiveMaximum ?? Infinity;
  let low = Math.max(center / 2, floor);
  let high = Math.min(center * 2, ceiling);
  if (bounds.type === "integer") {
    low = Math.ceil(low === bounds.exclusiveMinimum ? low + 1 : low);
    high = Math.floor(high === bounds.exclusiveMaximum ? high - 1 : high);
    return [String(low), String(high), String(Math.max(1, Math.round((high - low) / GRID_STEPS)))];
  }
  // An excluded bound is stepped inside by a share of the range.
  if (low === bounds.exclusiveMinimum) low += (high - low) / GRID_STEPS;
  if (high === bounds.exclusiveMaximum) high -= (high - low) / GRID_STEPS;
  return [trimmed(low), trimmed(high), trimmed((high - low) / GRID_STEPS)];
}

function showSource() {
  const kind = document.querySelector("input[name=sw-source]:checked").value;
  for (const group of document.querySelectorAll(".bt-group[data-sw-source]")) group.hidden = group.dataset.swSource !== kind;
}

function showTrials() {
  $("sw-trials-field").hidden = $("sw-method").value === "grid";
  renderSize();
}

// The run_sweep command the form describes, or its first problem. Only the form's shape
// is checked here; the ranges against the params model are the daemon's to judge.
function readForm() {
  const strategy = strategyOption();
  if (!strategy) return { problem: "the strategies have not loaded yet" };
  const command = { strategyId: strategy.id };
  const source = readSource(command);
  if (source.problem) return source;
  command.source = source.value;
  const parameters = readRanges();
  if (parameters.problem) return parameters;
  command.parameters = parameters.value;
  const minTrades = readNumber("Min. trades", $("sw-min-trades").value, true);
  if (minTrades.problem) return minTrades;
  command.objective = { metric: $("sw-metric").value, direction: $("sw-direction").value };
  if (minTrades.value !== undefined) command.objective.minTrades = minTrades.value;
  command.method = $("sw-method").value;
  if (command.method !== "grid") {
    const trials = readNumber("Trials", $("sw-trials").value, true);
    if (trials.problem) return trials;
    if (trials.value === undefined) return { problem: `Trials: a ${command.method} search needs a number of trials` };
    command.trials = trials.value;
  }
  return { command };
}

function readSource(command) {
  if (document.querySelector("input[name=sw-source]:checked").value === "file") {
    const path = $("sw-path").value.trim();
    if (!path) return { problem: "File: name a file or directory of the data directory" };
    const symbol = $("sw-file-symbol").value.trim().toUpperCase();
    if (symbol) command.symbol = symbol;
    return { value: { kind: "file", path } };
  }
  const source = { kind: "synthetic" };
  if ($("sw-resolution").value) source.resolution = $("sw-resolution").value;
  const days = readNumber("Days", $("sw-days").value);
  if (days.problem) return days;
  if (days.value !== undefined) source.durationSeconds = Math.round(days.value * DAY_SECONDS);
  const seed = readNumber("Seed", $("sw-seed").value, true);
  if (seed.problem) return seed;
  if (seed.value !== undefined) source.seed = seed.value;
  command.symbol = $("sw-symbol").value;
  return { value: source };
}

function readRanges() {
  const parameters = {};
  for (const row of $("sw-ranges").querySelectorAll(".sw-range")) {
    if (!row.querySelector("[data-role=vary]").checked) continue;
    const name = row.dataset.param;
    if (row.dataset.type === "boolean") {
      parameters[name] = { choices: [true, false] };
      continue;
    }
    const range = {};
    for (const role of ["low", "high", "step"]) {
      const text = row.querySelector(`[data-role=${role}]`).value;
      const read = readNumber(`${name} ${role}`, text, row.dataset.type === "integer");
      if (read.problem) return read;
      if (read.value !== undefined) range[role] = read.value;
    }
    if (range.low === undefined || range.high === undefined) return { problem: `${name}: give low and high` };
    parameters[name] = range;
  }
  if (Object.keys(parameters).length === 0) return { problem: "tick at least one parameter to vary" };
  return { value: parameters };
}

function readNumber(label, text, whole = false) {
  const typed = text.trim();
  if (typed === "") return { value: undefined };
  const value = Number(typed);
  if (!Number.isFinite(value)) return { problem: `${label}: "${typed}" is not a number` };
  if (whole && !Number.isInteger(value)) return { problem: `${label}: a whole number` };
  return { value };
}

// The grid's size as the daemon counts it (each range's values on its step), or the trials.
function renderSize() {
  const { command } = readForm();
  let text = "";
  if (command?.method === "grid") {
    const counts = Object.values(command.parameters).map((range) =>
      range.choices ? range.choices.length : range.step ? Math.floor((range.high - range.low) / range.step + 1e-9) + 1 : null,
    );
    text = counts.includes(null) ? "a grid needs a step for each range" : `${grouped(counts.reduce((a, b) => a * b, 1))} trials`;
  } else if (command) {
    text = `${grouped(command.trials)} trials`;
  }
  $("sw-size").textContent = text;
}

async function onRun(event) {
  event.preventDefault();
  const { command, problem } = readForm();
  if (problem) return showFormError(problem);
  sw.submitting = true;
  renderRunButton();
  try {
    const sweep = await sw.service.runSweep(command);
    sw.sweeps.set(sweep.jobId, { ...sw.sweeps.get(sweep.jobId), ...sweep });
    showFormError(null);
    select(sweep.jobId);
  } catch (error) {
    showFormError(`the daemon refused: ${error.message}`);
  } finally {
    sw.submitting = false;
    renderRunButton();
  }
}

function renderRunButton() {
  const button = $("sw-run");
  button.disabled = !sw.connected || sw.submitting || sw.options === null;
  button.title = sw.connected ? "" : "the daemon does not answer";
}

function showFormError(text) {
  $("sw-error").hidden = !text;
  $("sw-error").textContent = text ?? "";
}

// ---------------------------------------------------------------- the chosen sweep

function select(id) {
  sw.selected = id;
  sw.axes = null;
  sw.sort = { key: "value", descending: null };
  $("sw-start-result").textContent = "";
  if (id) sessionStorage.setItem(SELECTED_KEY, id);
  else sessionStorage.removeItem(SELECTED_KEY);
  renderSweeps();
  renderSweep();
}

async function onCancel() {
  try {
    await sw.service.cancelSweep(sw.selected);
  } catch (error) {
    showSweepError(`cancel: ${error.message}`);
  }
}

function showSweepError(text) {
  $("sw-job-error").hidden = !text;
  $("sw-job-error").textContent = text ?? "";
}

function renderSweep() {
  const sweep = sw.selected ? sw.sweeps.get(sw.selected) : undefined;
  const panel = $("sw-job");
  panel.dataset.jobId = sweep?.jobId ?? "";
  panel.dataset.status = sweep?.status ?? "";
  $("sw-job-title").textContent = sweep ? describe(sweep) : "No sweep chosen: run one, or pick one below";
  const badge = $("sw-job-status");
  badge.textContent = sweep?.status ?? "";
  badge.className = `badge job-${sweep?.status ?? "none"}`;
  const open = sweep?.status === "pending" || sweep?.status === "running";
  $("sw-cancel").hidden = !open;
  $("sw-cancel").disabled = !sw.connected;
  showSweepError(sweep?.status === "failed" ? `failed: ${sweep.error}` : null);
  renderProgress(sweep);
  renderResult(sweep);
}

function renderProgress(sweep) {
  const progress = sweep ? sw.progress.get(sweep.jobId) : undefined;
  const open = sweep?.status === "pending" || sweep?.status === "running";
  $("sw-progress-box").hidden = !open;
  if (!open) return;
  const fraction = progress?.fraction ?? 0;
  $("sw-progress").value = fraction;
  $("sw-progress").dataset.fraction = String(fraction);
  const text = $("sw-progress-text");
  if (sweep.status === "pending") text.textContent = "waiting for the sweep before it";
  else if (!progress) text.textContent = "starting its workers";
  else {
    const parts = [trialsText(progress)];
    if (progress.bestValue !== null) parts.push(`best ${figure(progress.bestValue)} (${paramsText(progress.bestParams)})`);
    if (progress.etaSeconds !== null) parts.push(`ETA ${duration(progress.etaSeconds)}`);
    text.textContent = parts.join(" · ");
  }
}

function renderResult(sweep) {
  const box = $("sw-results");
  const report = $("sw-report");
  const result = sweep?.status === "completed" ? sw.results.get(sweep.jobId) : undefined;
  if (sweep?.status === "completed" && !result) fetchSweep(sweep.jobId);
  box.hidden = !result;
  report.hidden = !result;
  if (!result) return;
  report.href = `/api/sweeps/${encodeURIComponent(sweep.jobId)}/report.html`;
  renderBest(sweep, result);
  const trials = result.trials ?? result.windows?.flatMap((window) => window.trials) ?? [];
  renderHeatmap(result, trials, Object.keys(sweep.parameters ?? trials[0]?.params ?? {}));
  renderTrials(result, trials);
}

function renderBest(sweep, result) {
  const best = result.best;
  const metric = metricLabel(result.objective?.metric);
  $("sw-best-text").textContent = best
    ? `Best: ${paramsText(best.params)} · ${metric} ${figure(best.value)} · ${grouped(best.total_trades)} trades`
    : result.windows ? "A walk-forward: each window's best is in the table; the HTML report has the windows" : "No feasible trial: no best";
  $("sw-start-live").hidden = !best;
  $("sw-start-live").disabled = !sw.connected;
  $("sw-counts").textContent = `${grouped(result.trials_total)} trials: ${grouped(result.trials_feasible ?? 0)} feasible, `
    + `${grouped(result.trials_failed ?? 0)} failed · ${grouped(result.trials_computed)} computed by this run`;
}

// ---------------------------------------------------------------- the heatmap

function onAxisChange() {
  sw.axes = [$("sw-heat-x").value, $("sw-heat-y").value];
  renderSweep();
}

// The best value at each (x, y) over the other parameters, computed from the table so that
// any two parameters can be chosen; a cell without a feasible trial says why.
function renderHeatmap(result, trials, names) {
  const section = $("sw-heat");
  section.hidden = names.length < 2;
  if (names.length < 2) return;
  const heat = result.heatmap;
  let [x, y] = sw.axes ?? (heat ? [heat.x, heat.y] : names.slice(0, 2));
  if (!names.includes(x) || !names.includes(y) || x === y) [x, y] = names.slice(0, 2);
  for (const [id, chosen] of [["sw-heat-x", x], ["sw-heat-y", y]]) {
    $(id).replaceChildren(...names.map((name) => new Option(name, name)));
    $(id).value = chosen;
  }
  $("sw-axes").hidden = names.length === 2;
  const minimize = result.objective?.direction === "minimize";
  const { xs, ys, cells } = heatCells(trials, x, y, minimize);
  const values = [...cells.values()].filter((c) => c.state === "value").map((c) => c.value);
  const [low, high] = [Math.min(...values), Math.max(...values)];
  const metric = metricLabel(result.objective?.metric);
  const head = document.createElement("tr");
  head.append(cell("th", `${y} \\ ${x}`), ...xs.map((value) => cell("th", String(value))));
  const rows = ys.map((yValue) => {
    const row = document.createElement("tr");
    row.append(cell("th", String(yValue)));
    for (const xValue of xs) {
      const found = cells.get(key(xValue, yValue)) ?? { state: "untried", tried: 0 };
      row.append(heatCell(found, `${x} ${xValue}, ${y} ${yValue}`, metric, shade(found, low, high, minimize)));
    }
    return row;
  });
  $("sw-heatmap").replaceChildren(head, ...rows);
  $("sw-heatmap").dataset.axes = `${x},${y}`;
}

function heatCells(trials, x, y, minimize) {
  const cells = new Map();
  for (const trial of trials) {
    const at = key(trial.params[x], trial.params[y]);
    const found = cells.get(at) ?? { state: "failed", tried: 0, value: null };
    found.tried += 1;
    if (trial.feasible && trial.value !== null) {
      const better = found.value === null || (minimize ? trial.value < found.value : trial.value > found.value);
      if (better) Object.assign(found, { state: "value", value: trial.value });
    } else if (trial.state !== "failed" && found.state === "failed") {
      found.state = "infeasible";
      found.why = trial.violations?.join("; ");
    } else if (trial.state === "failed" && found.state === "failed") {
      found.why = trial.error;
    }
    cells.set(at, found);
  }
  const axis = (name) => [...new Set(trials.map((t) => t.params[name]))].sort(byValue);
  return { xs: axis(x), ys: axis(y), cells };
}

const key = (x, y) => JSON.stringify([x, y]);
const byValue = (a, b) => (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b)));

function heatCell(found, where, metric, colour) {
  const td = cell("td", "");
  td.dataset.testid = "sw-cell";
  td.dataset.state = found.state;
  const trials = `${found.tried} ${found.tried === 1 ? "trial" : "trials"}`;
  if (found.state === "value") {
    td.textContent = figure(found.value);
    td.title = `${where}: ${metric} ${figure(found.value)} (best of ${trials})`;
    td.style.backgroundColor = colour; // CSSOM: allowed by the page's style-src 'self'
  } else if (found.state === "infeasible") {
    td.textContent = "–";
    td.title = `${where}: infeasible (${trials}${found.why ? `: ${found.why}` : ""})`;
  } else if (found.state === "failed") {
    td.textContent = "✕";
    td.title = `${where}: failed (${trials}${found.why ? `: ${found.why}` : ""})`;
  } else {
    td.title = `${where}: not tried`;
  }
  return td;
}

// Red for the worst value, green for the best (the objective's direction decides which).
function shade(found, low, high, minimize) {
  if (found.state !== "value") return "";
  let share = high > low ? (found.value - low) / (high - low) : 1;
  if (minimize) share = 1 - share;
  const [r, g, b] = WORST.map((worst, index) => Math.round(worst + (BEST[index] - worst) * share));
  return `rgba(${r}, ${g}, ${b}, 0.55)`;
}

function cell(tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

// ---------------------------------------------------------------- the trials table

function onSortClick(event) {
  const button = event.target.closest("button[data-sort]");
  if (!button) return;
  const same = sw.sort.key === button.dataset.sort;
  sw.sort = { key: button.dataset.sort, descending: same ? !currentDescending() : null };
  renderSweep();
}

function currentDescending() {
  const result = sw.results.get(sw.selected);
  if (sw.sort.descending !== null) return sw.sort.descending;
  // By default the best first: the objective's direction for its value, highest for others.
  return !(sw.sort.key === "value" && result?.objective?.direction === "minimize");
}

function renderTrials(result, trials) {
  const names = [...new Set(trials.flatMap((trial) => Object.keys(trial.params)))];
  const columns = [["number", "#"], ...names.map((name) => [`param:${name}`, name]), ...FIGURE_COLUMNS, ["state", "State"]];
  const descending = currentDescending();
  const head = document.createElement("tr");
  for (const [column, label] of columns) {
    const th = document.createElement("th");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.sort = column;
    button.dataset.testid = `sw-sort-${column.replace("param:", "")}`;
    button.textContent = column === "value" ? metricLabel(result.objective?.metric) : label;
    th.append(button);
    if (column === sw.sort.key) th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    head.append(th);
  }
  $("sw-trials-head").replaceChildren(head);
  const sorted = [...trials].sort((a, b) => compare(sortValue(a, sw.sort.key), sortValue(b, sw.sort.key), descending));
  $("sw-trial-rows").replaceChildren(...sorted.map((trial) => trialRow(trial, names)));
  $("sw-trial-count").textContent = `${grouped(trials.length)}, sorted by ${columns.find(([c]) => c === sw.sort.key)?.[1] ?? ""}`;
}

function sortValue(trial, column) {
  if (column.startsWith("param:")) return trial.params[column.slice(6)];
  if (column === "value" && !trial.feasible) return null; // the infeasible after every feasible one
  return trial[column];
}

// Values without a figure (null) always last, whatever the direction.
function compare(a, b, descending) {
  const missing = (v) => v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v));
  if (missing(a) || missing(b)) return missing(a) - missing(b);
  const order = byValue(a, b);
  return descending ? -order : order;
}

function trialRow(trial, names) {
  const row = document.createElement("tr");
  row.dataset.testid = "sw-trial-row";
  row.dataset.state = trial.feasible ? "feasible" : trial.state === "failed" ? "failed" : "infeasible";
  row.title = trial.error ?? trial.violations.join("; ");
  const cells = [
    [String(trial.number), ""],
    ...names.map((name) => [String(trial.params[name] ?? "-"), "num"]),
    ...FIGURE_COLUMNS.map(([column]) => [column === "total_trades" ? grouped(trial[column]) : figure(trial[column]), "num"]),
    [row.dataset.state, ""],
  ];
  for (const [text, className] of cells) {
    const td = cell("td", text);
    td.className = className;
    row.append(td);
  }
  row.children[names.length + 1].dataset.testid = "sw-trial-value";
  return row;
}

// ---------------------------------------------------------------- start live

// The best trial's params (the catalog's with the trial's) to start_strategy's
// config.params, after a confirmation: the strategy trades on its own symbols.
async function onStartLive() {
  const sweep = sw.sweeps.get(sw.selected);
  const best = sw.results.get(sw.selected)?.best;
  if (!sweep || !best) return;
  const name = sweep.strategyName ?? sweep.strategyId;
  const { ok } = await sw.confirmAction({
    title: `Start ${name} live with ${paramsText(best.params)}?`,
    text: `It trades the live feed on its configured symbols with ${paramsText(best.strategy_params)}, `
      + "as this sweep's best trial ran in its backtest. A running strategy must be stopped first.",
    confirm: "Start live",
  });
  if (!ok) return;
  const status = $("sw-start-result");
  status.dataset.outcome = "pending";
  status.textContent = "starting…";
  try {
    await sw.service.startStrategy(sweep.strategyId, { params: best.strategy_params });
    status.dataset.outcome = "started";
    status.textContent = `${name} started live with ${paramsText(best.strategy_params)}`;
  } catch (error) {
    status.dataset.outcome = "refused";
    status.textContent = `the daemon refused: ${error.message}`;
  }
}

// With tokens the report needs an Authorization header, which a link cannot send: the
// page fetches it and saves the file (it needs no network once saved).
async function onReportClick(event) {
  if (!sw.config.authRequired) return;
  event.preventDefault();
  try {
    const response = await fetch(event.currentTarget.href, { headers: { Authorization: `Bearer ${sw.token}` } });
    if (!response.ok) throw new Error(`${response.status}: ${(await response.text()).trim()}`);
    const saver = document.createElement("a");
    saver.href = URL.createObjectURL(await response.blob());
    saver.download = `sweep-${sw.selected}.html`;
    saver.click();
    setTimeout(() => URL.revokeObjectURL(saver.href), 60_000);
  } catch (error) {
    showSweepError(`the report: ${error.message}`);
  }
}

// ---------------------------------------------------------------- the sweeps

function renderSweeps() {
  const sweeps = [...sw.sweeps.values()].reverse(); // the daemon lists oldest first
  $("sw-empty").hidden = sweeps.length > 0;
  $("sw-rows").replaceChildren(...sweeps.map(sweepRow));
}

function sweepRow(sweep) {
  const row = document.createElement("tr");
  row.dataset.testid = "sw-row";
  row.dataset.jobId = sweep.jobId;
  row.dataset.status = sweep.status;
  row.tabIndex = 0;
  if (sweep.jobId === sw.selected) row.setAttribute("aria-selected", "true");
  const result = sweep.result ?? {};
  const progress = sw.progress.get(sweep.jobId);
  const badge = cell("span", sweep.status === "running" && progress ? `running ${trialsText(progress)}` : sweep.status);
  badge.className = `badge job-${sweep.status}`;
  badge.title = sweep.error ?? "";
  const texts = [
    sweep.createdAt ? shortTime(sweep.createdAt) : "",
    sweep.strategyName ? `${sweep.strategyName} · ${sweep.symbol}` : sweep.jobId,
    sweep.method ? `${sweep.method}: ${Object.keys(sweep.parameters ?? {}).join(", ")}` : "",
    null,
    sweep.status === "completed" ? grouped(result.trials_total) : "",
    result.best ? `${figure(result.best.value)} (${paramsText(result.best.params)})` : "",
  ];
  for (const text of texts) {
    const td = cell("td", text ?? "");
    if (text === null) td.append(badge);
    row.append(td);
  }
  return row;
}

function describe(sweep) {
  if (!sweep.strategyName) return `sweep ${sweep.jobId}`;
  const objective = sweep.objective ? `${sweep.objective.direction} ${metricLabel(sweep.objective.metric)}` : "";
  return [`${sweep.strategyName} on ${sweep.symbol}`, sourceText(sweep.source), `${sweep.method} search`, objective]
    .filter(Boolean)
    .join(" · ");
}

function sourceText(source) {
  if (!source) return "";
  if (source.kind !== "synthetic") return source.path ?? Object.values(source.paths ?? {}).join(", ");
  return `synthetic, ${duration(source.durationSeconds)} of ${source.resolution} bars, seed ${source.seed}`;
}

// ---------------------------------------------------------------- formatting

function metricLabel(metric) {
  if (metric === OBJECTIVE_EXTRA.key) return OBJECTIVE_EXTRA.label;
  return sw.options?.statistics.find((row) => row.key === metric)?.label ?? metric ?? "";
}

function boundsText(bounds) {
  const low = bounds.minimum ?? bounds.exclusiveMinimum;
  const high = bounds.maximum ?? bounds.exclusiveMaximum;
  return low === undefined && high === undefined ? "" : `(${low ?? "…"} to ${high ?? "…"})`;
}

const trialsText = (progress) => `${grouped(progress.trialsDone)} / ${grouped(progress.trialsTotal)} trials`;
const paramsText = (params) => Object.entries(params ?? {}).map(([name, value]) => `${name} ${value}`).join(", ");
const grouped = (value) => (typeof value === "number" ? value.toLocaleString("en-US") : "-");
const trimmed = (value) => String(Number(value.toFixed(6)));
const shortTime = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "-");
const figure = (value) =>
  typeof value === "number" && Number.isFinite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: 3, maximumFractionDigits: 3 })
    : "-";

// Seconds a person reads: 93,784 → "1 day 2 h 3 min 4 s".
function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "-";
  let rest = Math.max(Math.round(seconds), 0);
  const parts = [];
  for (const [size, unit] of [[86400, "day"], [3600, "h"], [60, "min"], [1, "s"]]) {
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count) parts.push(unit === "day" ? `${count} ${count === 1 ? "day" : "days"}` : `${count} ${unit}`);
  }
  return parts.join(" ") || "0 s";
}
