"""get_backtest_options: what a backtest form checks, from the models that enforce it."""

from __future__ import annotations

from pathlib import Path

from gateways.api.backtest_options import MAX_LISTED_FILES, history_files, strategy_options
from gateways.client.backtest_text import STATISTICS_ROWS
from orchestrator.strategy.config import CatalogEntry, StrategyRunConfig
from tests.support import running_daemon, test_config


async def test_the_options_give_each_strategy_s_params_with_their_model_s_bounds(
    tmp_path: Path,
) -> None:
    (tmp_path / "AAPL.csv").write_text("timestamp,open,high,low,close,volume\n")
    (tmp_path / "notes.txt").write_text("not history")
    (tmp_path / "dataset").mkdir()
    config = test_config(jobs={"data_dir": str(tmp_path)})
    async with running_daemon(config) as daemon, daemon.client() as client:
        reply = await client.request({"type": "get_backtest_options"})
        symbols = sorted(daemon.daemon.core.market.symbols)
    assert reply["type"] == "backtest_options"
    options = reply["data"]
    [sma] = [s for s in options["strategies"] if s["id"] == "strategy-123"]
    assert sma["params"] == {"fast": 3, "slow": 8}
    assert sma["paramBounds"]["fast"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 5,
        "description": "Bars in the fast moving average.",
    }
    assert sma["paramBounds"]["allow_short"]["type"] == "boolean"
    assert (sma["symbols"], sma["dataResolution"]) == (["AAPL", "MSFT"], "1s")
    assert [s["id"] for s in options["strategies"]] == [
        "strategy-123",
        "rsi-reversion",
        "bollinger-breakout",
    ]
    assert options["symbols"] == symbols
    assert options["synthetic"]["durationSeconds"] == {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 366 * 86_400,
        "default": 86_400.0,
        "description": "Length of the generated history.",
    }
    assert options["synthetic"]["seed"]["default"] == 7
    assert options["initialCapital"]["exclusiveMinimum"] == 0
    assert options["files"] == ["AAPL.csv", "dataset"]
    assert options["statistics"][0] == {"label": "Start", "key": "start", "unit": "time"}
    assert len(options["statistics"]) == len(STATISTICS_ROWS)


async def test_without_a_data_dir_there_are_no_files_to_offer() -> None:
    async with running_daemon() as daemon, daemon.client() as client:
        reply = await client.request({"type": "get_backtest_options"})
    assert reply["data"]["files"] is None


def test_a_strategy_whose_code_does_not_load_says_why_and_offers_no_bounds() -> None:
    entry = CatalogEntry(
        id="broken",
        name="Broken",
        kind="tests.no_such_module:Nothing",
        defaults=StrategyRunConfig(symbols=("AAPL",)),
    )
    option = strategy_options(entry)
    assert option["paramBounds"] == {}
    assert "no_such_module" in option["error"]


def test_the_files_offered_are_bounded(tmp_path: Path) -> None:
    for number in range(MAX_LISTED_FILES + 5):
        (tmp_path / f"S{number:04d}.parquet").write_bytes(b"")
    listed = history_files(tmp_path)
    assert listed is not None and len(listed) == MAX_LISTED_FILES
    assert listed[0] == "S0000.parquet"
