"""A backtest's HTML report: one self-contained file a trader opens, keeps and sends.

``GET /api/backtests/{job uuid}/report.html`` on the orchestrator server (8082)
answers it for a completed job whose report is kept; ``orchestrator backtest
... --report FILE.html`` saves it. The file needs nothing but itself: the
charting library (TradingView's lightweight-charts, vendored in
``gateways/web/vendor``) and the data are inline, so opening it makes no request.

It shows the price with every trade's entry and exit marked, the equity with
buy and hold, the drawdown, the statistics (formatted as the CLI formats them)
and the trade table. A backtest of several symbols on one account shows each
symbol's price and trades, the account's equity (buy and hold: the equal-weight
basket), drawdown and statistics, a table of each symbol's figures, and every
trade with its symbol. The curves are downsampled to ``REPORT_POINTS`` points,
keeping each bucket's extremes and every marked trade's bars; the trade table
holds up to ``REPORT_TRADES`` trades (``get_backtest_report`` pages through all).
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import orjson
from websockets.http11 import Request, Response

from gateways.client.backtest_text import SYMBOL_COLUMNS, statistics_rows, symbol_rows
from gateways.ws.static_files import is_upgrade, plain_response
from orchestrator.backtest.report import BacktestReport, TradeRecord, downsample
from orchestrator.model.clock import iso_utc
from orchestrator.model.errors import OrchestratorError

REPORT_PATH = re.compile(r"^/api/backtests/(?P<job>[^/]{1,64})/report\.html$")
REPORT_POINTS = 20_000
"""Most points of each curve in the file (extremes kept): a browser draws them at once."""
REPORT_TRADES = 10_000
"""Most trades in the file's table and on its price chart."""
CHART_LIBRARY = "web/vendor/lightweight-charts.standalone.production.js"

Found = TypeVar("Found")

ReportOf = Callable[[str], tuple[BacktestReport, str]]
"""A completed job's report and its title; raises OrchestratorError when there is none."""


def render_report(report: BacktestReport, title: str, chart_library: str) -> str:
    """The whole HTML file."""
    trades = report.trades[:REPORT_TRADES]
    data = _chart_data(report, trades)
    data["prices"] = [
        _price_data(part, part.trades[: REPORT_TRADES // len(report.parts)], part.symbol)
        for part in report.parts
    ] or [_price_data(report, trades, report.symbol)]
    # "</" inside a script would end it: JSON never needs the slash unescaped.
    payload = orjson.dumps(data).decode().replace("</", "<\\/")
    rows = "".join(_trade_row(number, trade) for number, trade in enumerate(trades, start=1))
    shown = f"{len(trades):,}"
    if len(report.trades) > len(trades):
        shown = f"the first {shown} of {len(report.trades):,}"
    return _PAGE.format(
        title=html.escape(title),
        statistics="".join(
            f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
            for label, value in statistics_rows(report.statistics.to_wire(snake_case=True))
        ),
        trade_rows=rows,
        trades_shown=shown,
        per_symbol=_per_symbol_table(report),
        price_charts="".join(
            f'<h3>{html.escape(price["symbol"])}</h3><div id="price-{number}" class="chart" '
            f'data-testid="price-chart"></div>'
            for number, price in enumerate(data["prices"])
        ),
        points=f"{len(data['time']):,} of {report.points:,}",
        library=chart_library.replace("</script", "<\\/script"),
        data=payload,
    )


def _per_symbol_table(report: BacktestReport) -> str:
    """Each symbol's figures (several symbols on one account), or nothing."""
    if not report.parts:
        return ""
    wire = [
        {"symbol": part.symbol, "statistics": part.statistics.to_wire(snake_case=True)}
        for part in report.parts
    ]
    head = "".join(
        f"<th>{html.escape(name)}</th>" for name in ("Symbol", *(c[0] for c in SYMBOL_COLUMNS))
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in symbol_rows(wire)
    )
    return (
        '<h2>Per symbol</h2><table data-testid="per-symbol"><thead><tr>'
        f"{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _kept(report: BacktestReport, trades: tuple[TradeRecord, ...], series: tuple[Any, ...]) -> Any:
    """The points to draw: each stretch's extremes, and every marked trade's bars."""
    kept = downsample(series, REPORT_POINTS)
    marked = np.array([b for t in trades for b in (t.entry_bar, t.exit_bar)], dtype=np.int64)
    return np.union1d(kept, marked[(marked >= 0) & (marked < report.points)])


def _price_data(
    report: BacktestReport, trades: tuple[TradeRecord, ...], symbol: str
) -> dict[str, Any]:
    """One symbol's closes at the kept points and its trades' marks."""
    kept = _kept(report, trades, (report.closes,))
    return {
        "symbol": symbol or "price",
        "time": report.times[kept].astype(np.int64).tolist(),
        "close": report.closes[kept].tolist(),
        "marks": _marks(report, trades),
    }


def _chart_data(report: BacktestReport, trades: tuple[TradeRecord, ...]) -> dict[str, Any]:
    """The curves at the kept points, and the trades' marks (bar indexes into them)."""
    kept = _kept(report, trades, (report.equity, report.drawdown_pct, report.closes))
    times = report.times[kept].astype(np.int64)
    return {
        "time": times.tolist(),
        "close": report.closes[kept].tolist(),
        "equity": report.equity[kept].tolist(),
        "buyAndHold": report.buy_and_hold[kept].tolist(),
        "drawdown": report.drawdown_pct[kept].tolist(),
        "marks": _marks(report, trades),
    }


def _marks(report: BacktestReport, trades: tuple[TradeRecord, ...]) -> list[dict[str, Any]]:
    return sorted(
        (
            mark
            for trade in trades
            for mark in (
                _mark(report, trade.entry_bar, trade.side == "long", f"{trade.side} in"),
                _mark(report, trade.exit_bar, trade.side != "long", trade.exit_reason),
            )
            if mark is not None
        ),
        key=lambda mark: int(mark["time"]),
    )


def _mark(report: BacktestReport, bar: int, buy: bool, text: str) -> dict[str, Any] | None:
    if not 0 <= bar < report.points:
        return None
    return {"time": int(report.times[bar]), "buy": buy, "text": text}


def _trade_row(number: int, trade: TradeRecord) -> str:
    cells = (
        f"{number:,}",
        trade.symbol,
        trade.side,
        f"{trade.quantity:,g}",
        iso_utc(trade.entry_time),
        f"{trade.entry_price:,.4f}",
        iso_utc(trade.exit_time),
        f"{trade.exit_price:,.4f}",
        f"{trade.pnl:,.2f}",
        f"{trade.pnl_pct:,.2f}%",
        trade.exit_reason,
    )
    sign = "gain" if trade.pnl > 0 else "loss" if trade.pnl < 0 else ""
    return f'<tr class="{sign}">' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


class ReportPages:
    """Answers ``GET /api/backtests/{uuid}/report.html``; any other request is not ours."""

    def __init__(self, report_of: ReportOf) -> None:
        self._report_of = report_of
        self._library = (resources.files("gateways") / CHART_LIBRARY).read_text(encoding="utf-8")

    def respond(self, request: Request, authenticated: bool) -> Response | None:
        return job_page(
            request,
            authenticated,
            REPORT_PATH,
            self._report_of,
            lambda report, title: render_report(report, title, self._library),
        )


def job_page(
    request: Request,
    authenticated: bool,
    path: re.Pattern[str],
    find: Callable[[str], tuple[Found, str]],
    render: Callable[[Found, str], str],
) -> Response | None:
    """The HTML page of the job ``path`` names (its ``job`` group, a uuid): what ``find``
    returns for it (the content and the title), rendered; None for a request that is not
    ``path``'s. A job ``find`` does not know (OrchestratorError) is a 404."""
    found = path.match(urlsplit(request.path).path)
    if found is None or is_upgrade(request):
        return None
    if not authenticated:
        # A stranger learns nothing, not even whether the job exists.
        return plain_response(HTTPStatus.UNAUTHORIZED, "A report needs a token\n")
    try:
        job_id = str(uuid.UUID(found.group("job")))
        content, title = find(job_id)
    except ValueError:
        return plain_response(HTTPStatus.BAD_REQUEST, "Not a job uuid\n")
    except OrchestratorError as exc:
        return plain_response(HTTPStatus.NOT_FOUND, f"{exc.message}\n")
    body = render(content, title).encode()
    return plain_response(HTTPStatus.OK, body, "text/html; charset=utf-8")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 0 auto; padding: 16px; max-width: 1200px;
  background: #0d1117; color: #e6edf3; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 24px; }}
.chart {{ height: 320px; }} .chart.small {{ height: 180px; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #30363d; text-align: right; }}
th {{ text-align: left; font-weight: normal; color: #8b949e; }}
.trades {{ max-height: 480px; overflow: auto; }} .trades th {{ position: sticky; top: 0;
  background: #161b22; }}
tr.gain td:nth-child(9) {{ color: #3fb950; }} tr.loss td:nth-child(9) {{ color: #f85149; }}
.note {{ color: #8b949e; }}
</style></head><body>
<h1>{title}</h1>
<h2>Price and trades</h2>{price_charts}
<h2>Equity and buy &amp; hold</h2><div id="equity" class="chart" data-testid="equity-chart"></div>
<h2>Drawdown</h2><div id="drawdown" class="chart small" data-testid="drawdown-chart"></div>
<p class="note">Curves: {points} bars (each stretch's lowest and highest kept).</p>
<h2>Statistics</h2><table data-testid="statistics">{statistics}</table>
{per_symbol}
<h2>Trades ({trades_shown})</h2>
<div class="trades"><table data-testid="trades"><thead><tr><th>#</th><th>symbol</th><th>side</th>
<th>quantity</th><th>entry time</th><th>entry</th><th>exit time</th><th>exit</th>
<th>P&amp;L</th><th>P&amp;L %</th><th>exit reason</th></tr></thead>
<tbody>{trade_rows}</tbody></table></div>
<script>{library}</script>
<script>
const data = {data};
const LC = LightweightCharts;
const options = {{ layout: {{ background: {{ color: "#0d1117" }}, textColor: "#e6edf3" }},
  grid: {{ vertLines: {{ color: "#21262d" }}, horzLines: {{ color: "#21262d" }} }},
  timeScale: {{ timeVisible: true }}, autoSize: true }};
const points = (values) => data.time.map((time, i) => ({{ time, value: values[i] }}));
function chart(id) {{ return LC.createChart(document.getElementById(id), options); }}
const prices = data.prices.map((symbol, number) => {{
  const price = chart(`price-${{number}}`);
  const close = price.addSeries(LC.LineSeries, {{ color: "#58a6ff", lineWidth: 1 }});
  close.setData(symbol.time.map((time, i) => ({{ time, value: symbol.close[i] }})));
  LC.createSeriesMarkers(close, symbol.marks.map((m) => ({{ time: m.time,
    position: m.buy ? "belowBar" : "aboveBar", color: m.buy ? "#3fb950" : "#f85149",
    shape: m.buy ? "arrowUp" : "arrowDown", text: m.text }})));
  return price;
}});
const equity = chart("equity");
equity.addSeries(LC.LineSeries, {{ color: "#d29922", lineWidth: 2, title: "equity" }})
  .setData(points(data.equity));
equity.addSeries(LC.LineSeries, {{ color: "#8b949e", lineWidth: 1, title: "buy & hold" }})
  .setData(points(data.buyAndHold));
chart("drawdown").addSeries(LC.AreaSeries, {{ lineColor: "#f85149",
  topColor: "rgba(248,81,73,0.05)", bottomColor: "rgba(248,81,73,0.4)", title: "drawdown %" }})
  .setData(points(data.drawdown));
for (const c of [...prices, equity]) c.timeScale().fitContent();
document.body.dataset.ready = "true";
</script>
</body></html>
"""
