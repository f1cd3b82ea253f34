"""check-config and run in the words of the person who wrote the TOML: the key they
meant, TOML's types, strategies by id, the line, the environment variable to blame,
and every problem (config and catalog) in one pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateways.cli import main as cli
from gateways.config import load_config
from gateways.config_problems import toml_words
from orchestrator.model.errors import ConfigError


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    path = tmp_path / "orchestrator.toml"
    path.write_text(text, encoding="utf-8")
    assert cli.main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    return [line.strip() for line in err.splitlines()]


def test_a_bad_environment_variable_is_named_not_blamed_on_the_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SERVERS__ORCHESTRATOR__PORT", "abc")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert caught.value.message == "invalid configuration in the environment"
    [problem] = caught.value.problems
    variable = "ORCHESTRATOR_SERVERS__ORCHESTRATOR__PORT"
    assert problem.startswith(f"{variable} (servers.orchestrator.port): ")
    assert "'abc'" in problem
    assert cli.main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert "embedded defaults" not in err and "ORCHESTRATOR_SERVERS__ORCHESTRATOR__PORT" in err


def test_a_misspelt_key_gets_a_did_you_mean_and_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, problem = check(tmp_path, "[risk]\n\n[broker]\n# fees\nslipage_bps = 2\n", capsys)
    assert problem == "broker.slipage_bps: unknown key; did you mean slippage_bps? (line 5)"


def test_types_are_named_in_toml_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, servers, tokens = check(tmp_path, 'servers = 3\n[security]\ntokens = "x"\n', capsys)
    assert "an array" in tokens and "tuple" not in tokens
    assert "a table" in servers and "dict" not in servers
    assert toml_words("Tuple should have at most 9 items") == "Array should have at most 9 items"


CATALOG = """
[servers.orchestrator]
port = 70000

[[strategies]]
id = "strategy-123"
name = "SMA"
kind = "sma_crossover"
params = { fats = 3, slow = 8 }
defaults = { symbols = ["AAPL"] }

[[strategies]]
id = "offfeed"
name = "Off the feed"
kind = "rsi_reversion"
defaults = { symbols = ["GOOG", "NOPE"] }
"""


def test_every_problem_of_config_and_catalog_in_one_pass_strategies_by_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header, *problems = check(tmp_path, CATALOG, capsys)
    assert "orchestrator.toml" in header
    assert [p.split(":")[0] for p in problems] == [
        "servers.orchestrator.port",
        "strategies.strategy-123.params.fats",
        "strategies.offfeed.defaults.symbols",
    ]
    assert problems[1].endswith("unknown key; did you mean fast? (line 9)")
    assert "does not provide NOPE" in problems[2] and problems[2].endswith("(line 16)")


def test_a_default_symbol_the_feed_does_not_provide_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CATALOG.replace("port = 70000", "port = 9082").replace("fats", "fast")
    header, problem = check(tmp_path, text, capsys)
    assert header.startswith("invalid strategy catalog in")
    assert problem.startswith("strategies.offfeed.defaults.symbols: the feed (synthetic)")


def test_a_misspelt_table_gets_a_did_you_mean_and_its_header_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, problem = check(tmp_path, "[logging]\nlevel = 'info'\n\n[brokr]\nslippage_bps = 2\n", capsys)
    assert problem == "brokr: unknown key; did you mean broker? (line 4)"
