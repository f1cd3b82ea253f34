"""``orchestrator check-config`` against the loopback exchange: a venue that works is
reported with its balance; each way it can fail is a sentence saying what is wrong,
and the exit code is 2. No order is ever placed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateways.cli.main import main
from tests.venues.loopback_exchange import LoopbackExchange, LoopbackMarket, serving_in_thread

KEY, SECRET = "check-key", "check-secret"


@pytest.fixture
def exchange() -> Iterator[LoopbackExchange]:
    venue = LoopbackExchange(
        KEY, SECRET, [LoopbackMarket("BTC", "USDT", 30_000.0)], {"USDT": 5_000.0}
    )
    with serving_in_thread(venue):
        yield venue


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_VENUE_MAIN_API_KEY", KEY)
    monkeypatch.setenv("ORCHESTRATOR_VENUE_MAIN_SECRET", SECRET)


def config_file(
    tmp_path: Path, venue: LoopbackExchange, symbol: str = "BTC/USDT", **extra: str
) -> Path:
    urls = ", ".join(f"{name} = {json.dumps(url)}" for name, url in venue.ccxt_urls().items())
    settings = "".join(f"{key} = {value}\n" for key, value in extra.items())
    path = tmp_path / "orchestrator.toml"
    path.write_text(
        f"""
[journal]
state_dir = "{tmp_path / "state"}"

[market_data.feed]
kind = "synthetic"
symbols = {{ "{symbol}" = 30000.0 }}

[venues.main]
exchange = "binance"
enable_rate_limit = false
timeout_seconds = 2.0
api_urls = {{ {urls} }}
{settings}
[[strategies]]
id = "live-sma"
name = "Live SMA"
kind = "sma_crossover"
defaults = {{ symbols = ["{symbol}"], venue = "main", real_trading = true }}
""",
        encoding="utf-8",
    )
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check-config", "--config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_working_venue_is_reported_with_its_balance(
    tmp_path: Path, exchange: LoopbackExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = check(config_file(tmp_path, exchange), capsys)
    assert (code, err) == (0, "")
    assert "venue main    (binance) OK: 1 markets" in out
    assert "balance 5000 USDT" in out
    assert (
        "BTC/USDT: stop-limit on the venue (STOP_LOSS_LIMIT), stop on the venue (STOP_LOSS)" in out
    )
    assert exchange.submissions == 0
    assert KEY not in out and SECRET not in out


def test_a_bad_key_is_named(
    tmp_path: Path,
    exchange: LoopbackExchange,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_VENUE_MAIN_SECRET", "not-the-secret")
    code, _, err = check(config_file(tmp_path, exchange), capsys)
    assert code == 2
    assert "venue main refused the API key or its signature" in err
    assert "ORCHESTRATOR_VENUE_MAIN_SECRET" in err
    assert "not-the-secret" not in err


def test_clock_skew_is_measured(
    tmp_path: Path, exchange: LoopbackExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    exchange.skew_ms = 5_000
    code, _, err = check(config_file(tmp_path, exchange), capsys)
    assert code == 2
    assert "clock skew of" in err and "sync the clock" in err


def test_an_unknown_symbol_is_named(
    tmp_path: Path, exchange: LoopbackExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = check(config_file(tmp_path, exchange, symbol="ETH/USDT"), capsys)
    assert code == 2
    assert "venue main has no spot market ETH/USDT" in err


def test_missing_credentials_are_named(
    tmp_path: Path,
    exchange: LoopbackExchange,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_VENUE_MAIN_API_KEY")
    code, _, err = check(config_file(tmp_path, exchange), capsys)
    assert code == 2
    assert "set ORCHESTRATOR_VENUE_MAIN_API_KEY" in err


def test_an_unreachable_venue_and_an_unknown_exchange(
    tmp_path: Path, exchange: LoopbackExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path, exchange)
    path.write_text(path.read_text().replace(f":{exchange.port}/", ":1/"))
    code, _, err = check(path, capsys)
    assert code == 2 and "venue main cannot be reached" in err
    path.write_text(path.read_text().replace('exchange = "binance"', 'exchange = "nosuchexchange"'))
    code, _, err = check(path, capsys)
    assert code == 2 and "ccxt has no exchange 'nosuchexchange'" in err


def test_a_ccxt_feed_symbol_the_venue_does_not_list_is_named(
    tmp_path: Path, exchange: LoopbackExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path, exchange)
    text = path.read_text(encoding="utf-8").replace(
        'kind = "synthetic"\nsymbols = { "BTC/USDT" = 30000.0 }',
        'kind = "ccxt"\nvenue = "main"\nsymbols = ["BTC/USDT", "DOGE/USDT"]',
    )
    path.write_text(text, encoding="utf-8")
    code, _, err = check(path, capsys)
    assert code == 2
    assert "venue main has no spot market DOGE/USDT" in err


def test_it_says_where_the_stops_rest_per_market(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    types = ("LIMIT", "MARKET", "STOP_LOSS_LIMIT")
    venue = LoopbackExchange(
        KEY, SECRET, [LoopbackMarket("BTC", "USDT", 30_000.0, order_types=types)], {}
    )
    with serving_in_thread(venue):
        code, out, _ = check(config_file(tmp_path, venue), capsys)
    assert code == 0
    assert "BTC/USDT: stop-limit on the venue (STOP_LOSS_LIMIT), stop in the daemon" in out
