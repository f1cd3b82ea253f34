"""A sweep's HTML report: one self-contained file with its best trial, heatmaps and table.

``GET /api/sweeps/{job uuid}/report.html`` on the orchestrator server (8082) answers it
for a completed sweep; ``orchestrator sweep ... --report FILE.html`` saves it. Like a
backtest's report (:mod:`gateways.api.report_page`) it needs nothing but itself; it
has no script at all: the heatmaps are HTML tables coloured where they are written.

It shows what was searched, the best feasible trial (its params, the params to start it
live with, every statistic), a heatmap for each pair of varied parameters (the
result's own pair first, at most ``MAX_HEATMAPS``): each cell the best value over the
other parameters, a cell without a feasible trial marked infeasible or failed, and
every trial, best first. A walk-forward's report shows its windows and the stitched
out-of-sample statistics instead of heatmaps.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.http11 import Request, Response

from gateways.api.report_page import job_page
from gateways.client.backtest_text import statistics_rows

SWEEP_REPORT_PATH = re.compile(r"^/api/sweeps/(?P<job>[^/]{1,64})/report\.html$")
MAX_HEATMAPS = 6
"""Most heatmaps in a report (the pairs of four parameters): beyond, a page nobody reads."""
FIGURE_COLUMNS = (
    ("total_trades", "Trades"),
    ("return_pct", "Return %"),
    ("sharpe_ratio", "Sharpe"),
    ("sortino_ratio", "Sortino"),
    ("max_drawdown_pct", "Max DD %"),
    ("win_rate_pct", "Win %"),
)
WORST = (248, 81, 73)
BEST = (63, 185, 80)

SweepReportOf = Callable[[str], tuple[Mapping[str, Any], str]]
"""A completed sweep's result and its title; raises OrchestratorError when there is none."""

Row = Mapping[str, Any]


@dataclass
class Cell:
    """One (x, y) of a heatmap: the best feasible value there, or why there is none."""

    tried: int = 0
    value: float | None = None
    state: str = "failed"
    """"value", "infeasible" (complete, none feasible) or "failed" (every trial failed)."""
    why: list[str] = field(default_factory=list)


def heat_cells(
    trials: Iterable[Row], x: str, y: str, minimize: bool
) -> dict[tuple[Any, Any], Cell]:
    """Each tried (x, y) of two parameters: its best feasible value over the others."""
    cells: dict[tuple[Any, Any], Cell] = {}
    for trial in trials:
        params = trial["params"]
        cell = cells.setdefault((params.get(x), params.get(y)), Cell())
        cell.tried += 1
        value = trial.get("value")
        if trial.get("feasible") and value is not None:
            if cell.value is None or (value < cell.value if minimize else value > cell.value):
                cell.value, cell.state = value, "value"
        elif trial.get("state") != "failed":
            if cell.state == "failed":
                cell.state = "infeasible"
            cell.why.extend(trial.get("violations") or ())
        elif trial.get("error"):
            cell.why.append(str(trial["error"]))
    return cells


def heatmap_pairs(result: Mapping[str, Any], names: Sequence[str]) -> list[tuple[str, str]]:
    """The result's own pair first, then the others in the order of the parameters."""
    pairs = list(itertools.combinations(names, 2))
    heat = result.get("heatmap")
    if heat and (heat["x"], heat["y"]) in pairs:
        pairs.remove((heat["x"], heat["y"]))
        pairs.insert(0, (heat["x"], heat["y"]))
    return pairs[:MAX_HEATMAPS]


def ranked(trials: Sequence[Row], minimize: bool) -> list[Row]:
    """Feasible trials best first, then the others in their order."""
    feasible = [t for t in trials if t.get("feasible") and t.get("value") is not None]
    feasible.sort(key=lambda t: float(t["value"]), reverse=not minimize)
    ranked_ids = {id(t) for t in feasible}
    return feasible + [t for t in trials if id(t) not in ranked_ids]


def render_sweep_report(result: Mapping[str, Any], title: str) -> str:
    """The whole HTML file."""
    objective = result.get("objective") or {}
    minimize = objective.get("direction") == "minimize"
    metric = str(objective.get("metric", ""))
    if isinstance(result.get("windows"), list):
        body = _walk_forward(result, metric)
    else:
        trials = list(result.get("trials") or ())
        names = list(dict.fromkeys(name for trial in trials for name in trial["params"]))
        heatmaps = "".join(
            _heatmap(trials, x, y, metric, minimize) for x, y in heatmap_pairs(result, names)
        )
        body = (
            f"{_best(result.get('best'), metric)}"
            f"<h2>Heatmaps</h2>{heatmaps or '<p>One parameter varied: no heatmap.</p>'}"
            f"<p class='note'>Each cell the best {html.escape(metric)} over the other "
            "parameters; red the worst, green the best; &ndash; infeasible (a constraint broken, "
            "or no value), ✕ failed, empty: not tried. Hover a cell for its trials.</p>"
            f"<h2>Trials ({len(trials):,}, best first)</h2>"
            f"{_trials_table(ranked(trials, minimize), names, metric)}"
        )
    return _PAGE.format(title=html.escape(title), summary=_summary(result), body=body)


def _summary(result: Mapping[str, Any]) -> str:
    objective = result.get("objective") or {}
    constraints = []
    if objective.get("min_trades"):
        constraints.append(f"at least {objective['min_trades']:,} trades")
    if objective.get("max_drawdown_pct") is not None:
        constraints.append(f"a drawdown within {objective['max_drawdown_pct']}%")
    rows = [
        ("Strategy", result.get("strategy_id")),
        ("Symbol", result.get("symbol")),
        ("Method", result.get("method")),
        ("Objective", f"{objective.get('direction', '')} {objective.get('metric', '')}"),
        ("Constraints", ", ".join(constraints) or "none"),
        ("Trials", f"{result.get('trials_total', 0):,}"),
        ("Feasible", _count(result.get("trials_feasible"))),
        ("Failed", _count(result.get("trials_failed"))),
        ("Computed by the run that finished it", _count(result.get("trials_computed"))),
    ]
    return _pairs_table(rows, "summary")


def _best(best: Mapping[str, Any] | None, metric: str) -> str:
    if best is None:
        return "<h2>Best trial</h2><p>No feasible trial: no best.</p>"
    params = _pairs_table([(k, _shown(v)) for k, v in best["params"].items()], "best-params")
    start = ", ".join(f"{k}={_shown(v)}" for k, v in best["strategy_params"].items())
    figures = _pairs_table(statistics_rows(best.get("statistics") or {}), "best-statistics")
    return (
        f"<h2>Best trial: #{best['number']}, {html.escape(metric)} "
        f"{html.escape(_figure(best.get('value')))}</h2>{params}"
        f"<p>To start it live: <code data-testid='start-params'>{html.escape(start)}</code> "
        "(start_strategy's config.params).</p><h3>Its statistics</h3>"
        f"{figures}"
    )


def _heatmap(trials: Sequence[Row], x: str, y: str, metric: str, minimize: bool) -> str:
    cells = heat_cells(trials, x, y, minimize)
    xs = sorted({key[0] for key in cells}, key=_order)
    ys = sorted({key[1] for key in cells}, key=_order)
    values = [c.value for c in cells.values() if c.value is not None]
    low, high = (min(values), max(values)) if values else (0.0, 0.0)
    head = f"<th>{html.escape(y)} \\ {html.escape(x)}</th>" + "".join(
        f"<th>{html.escape(_shown(v))}</th>" for v in xs
    )
    rows = []
    for y_value in ys:
        tds = "".join(
            _heat_cell(
                cells.get((x_value, y_value)),
                f"{x} {_shown(x_value)}, {y} {_shown(y_value)}",
                metric,
                low,
                high,
                minimize,
            )
            for x_value in xs
        )
        rows.append(f"<tr><th>{html.escape(_shown(y_value))}</th>{tds}</tr>")
    return (
        f"<h3>{html.escape(x)} &times; {html.escape(y)}</h3><div class='scroll'>"
        "<table class='heatmap' data-testid='heatmap' "
        f"data-axes='{html.escape(x)},{html.escape(y)}'>"
        f"<tr>{head}</tr>{''.join(rows)}</table></div>"
    )


def _heat_cell(
    cell: Cell | None, where: str, metric: str, low: float, high: float, minimize: bool
) -> str:
    if cell is None:
        return f"<td data-state='untried' title='{html.escape(where)}: not tried'></td>"
    tried = f"{cell.tried} trial" + ("s" if cell.tried != 1 else "")
    if cell.value is not None:
        share = (cell.value - low) / (high - low) if high > low else 1.0
        share = 1 - share if minimize else share
        r, g, b = (round(w + (b - w) * share) for w, b in zip(WORST, BEST, strict=True))
        title = f"{where}: {metric} {_figure(cell.value)} (best of {tried})"
        return (
            f"<td data-state='value' style='background:rgba({r},{g},{b},0.55)' "
            f"title='{html.escape(title)}'>{html.escape(_figure(cell.value))}</td>"
        )
    why = "; ".join(dict.fromkeys(cell.why))
    title = f"{where}: {cell.state} ({tried}{': ' + why if why else ''})"
    mark = "&ndash;" if cell.state == "infeasible" else "✕"
    return f"<td data-state='{cell.state}' title='{html.escape(title)}'>{mark}</td>"


def _trials_table(trials: Sequence[Row], names: Sequence[str], metric: str) -> str:
    head = "".join(
        f"<th>{html.escape(label)}</th>"
        for label in ("#", *names, metric, *(label for _, label in FIGURE_COLUMNS), "state")
    )
    rows = []
    for trial in trials:
        state = "feasible" if trial.get("feasible") else str(trial.get("state"))
        state = "infeasible" if state == "complete" else state
        cells = [
            str(trial["number"]),
            *(_shown(trial["params"].get(name, "-")) for name in names),
            _figure(trial.get("value")),
            *(_figure(trial.get(key), key == "total_trades") for key, _ in FIGURE_COLUMNS),
            state,
        ]
        why = trial.get("error") or "; ".join(trial.get("violations") or ())
        rows.append(
            f"<tr class='{state}' title='{html.escape(str(why))}'>"
            + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            + "</tr>"
        )
    return (
        f"<div class='trials'><table data-testid='trials'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _walk_forward(result: Mapping[str, Any], metric: str) -> str:
    head = "<tr><th>window</th><th>train bars</th><th>test bars</th><th>best params</th>"
    head += f"<th>{html.escape(metric)}</th><th>out-of-sample return %</th></tr>"
    rows = []
    for window in result["windows"]:
        best = window.get("best")
        oos = window.get("out_of_sample") or {}
        cells = [
            str(window.get("index")),
            " to ".join(map(str, window.get("train_bars") or ())),
            " to ".join(map(str, window.get("test_bars") or ())),
            ", ".join(f"{k} {v}" for k, v in best["params"].items()) if best else "no feasible",
            _figure(best.get("value")) if best else "-",
            _figure(oos.get("return_pct")),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    stitched = (result.get("out_of_sample") or {}).get("statistics")
    statistics = (
        _pairs_table(statistics_rows(stitched), "out-of-sample")
        if isinstance(stitched, dict)
        else "<p>Not every window found a feasible trial: no stitched curve.</p>"
    )
    return (
        f"<h2>Windows</h2><table data-testid='windows'>{head}{''.join(rows)}</table>"
        f"<h2>Out of sample, stitched</h2>{statistics}"
    )


def _pairs_table(rows: Iterable[tuple[str, Any]], test_id: str) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(label))}</th><td>{html.escape(str(value))}</td></tr>"
        for label, value in rows
    )
    return f"<table data-testid='{test_id}'>{body}</table>"


def _shown(value: Any) -> str:
    """A parameter's value as the wire and the CLI's --param write it (true, not True)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _order(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _figure(value: Any, whole: bool = False) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        return "-"
    return f"{value:,.0f}" if whole else f"{value:,.3f}"


class SweepReportPages:
    """Answers ``GET /api/sweeps/{uuid}/report.html``; any other request is not ours."""

    def __init__(self, report_of: SweepReportOf) -> None:
        self._report_of = report_of

    def respond(self, request: Request, authenticated: bool) -> Response | None:
        return job_page(
            request, authenticated, SWEEP_REPORT_PATH, self._report_of, render_sweep_report
        )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 0 auto; padding: 16px; max-width: 1200px;
  background: #0d1117; color: #e6edf3; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 24px; }} h3 {{ font-size: 14px; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #30363d; text-align: right; }}
th {{ text-align: left; font-weight: normal; color: #8b949e; }}
.scroll {{ overflow-x: auto; }}
.heatmap {{ border-collapse: separate; border-spacing: 2px; }}
.heatmap td {{ text-align: center; min-width: 4em; border: 0; border-radius: 3px;
  background: #161b22; }}
.heatmap th {{ text-align: center; border: 0; }}
.heatmap td[data-state=infeasible] {{ color: #d29922; }}
.heatmap td[data-state=failed] {{ color: #f85149; }}
.heatmap td[data-state=untried] {{ background: none; outline: 1px dashed #30363d; }}
.trials {{ max-height: 600px; overflow: auto; }} .trials th {{ position: sticky; top: 0;
  background: #161b22; }}
tr.failed td {{ color: #f85149; }} tr.infeasible td {{ color: #8b949e; }}
code {{ background: #161b22; padding: 2px 6px; border-radius: 4px; }}
.note {{ color: #8b949e; }}
</style></head><body>
<h1>{title}</h1>
{summary}
{body}
</body></html>
"""
