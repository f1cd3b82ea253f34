"""A venue's credentials: from the environment or a file only the daemon's user reads,
never from the TOML, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateways.config import DaemonConfig, unknown_environment_settings
from gateways.venues.config import VenueConfig
from gateways.venues.credentials import load_credentials
from orchestrator.model.errors import ConfigError

VENUE = VenueConfig(exchange="binance")


def credentials_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_from_the_environment_and_never_shown() -> None:
    environ = {
        "ORCHESTRATOR_VENUE_MAIN_API_KEY": "k-123",
        "ORCHESTRATOR_VENUE_MAIN_SECRET": "s-456",
    }
    credentials = load_credentials("main", VENUE, environ)
    assert credentials.ccxt_fields() == {"apiKey": "k-123", "secret": "s-456"}
    shown = f"{credentials!r} {credentials}"
    assert "k-123" not in shown and "s-456" not in shown


def test_a_missing_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="set ORCHESTRATOR_VENUE_MAIN_SECRET"):
        load_credentials("main", VENUE, {"ORCHESTRATOR_VENUE_MAIN_API_KEY": "k"})


def test_credential_variables_are_no_misspelt_setting() -> None:
    environ = {"ORCHESTRATOR_VENUE_MAIN_API_KEY": "k", "ORCHESTRATOR_VENU__X": "1"}
    assert [line.split(":")[0] for line in unknown_environment_settings(environ)] == [
        "ORCHESTRATOR_VENU__X"
    ]


def test_from_a_private_file(tmp_path: Path) -> None:
    path = credentials_file(tmp_path / "main.toml", 'api_key = "k"\nsecret = "s"\npassword = "p"\n')
    venue = VenueConfig(exchange="okx", credentials_file=path)
    assert load_credentials("main", venue, {}).ccxt_fields() == {
        "apiKey": "k",
        "secret": "s",
        "password": "p",
    }


def test_a_relative_file_is_read_from_systemds_credentials_directory(tmp_path: Path) -> None:
    credentials_file(tmp_path / "main.toml", 'api_key = "k"\nsecret = "s"\n', mode=0o400)
    venue = VenueConfig(exchange="binance", credentials_file=Path("main.toml"))
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert load_credentials("main", venue, environ).ccxt_fields()["apiKey"] == "k"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_file_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = credentials_file(tmp_path / "main.toml", 'api_key = "k"\nsecret = "s"\n', mode)
    with pytest.raises(ConfigError, match=f"mode {mode:o}.*chmod 600"):
        load_credentials("main", VenueConfig(exchange="binance", credentials_file=path), {})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('api_key = "k"\n', "missing secret"),
        ('api_key = "k"\nsecret = "s"\ntoken = "t"\n', "unknown keys token"),
        ('api_key = "k-secret-value\n', "not valid TOML"),
    ],
)
def test_a_broken_file_says_what_is_wrong_without_its_content(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = credentials_file(tmp_path / "main.toml", text)
    with pytest.raises(ConfigError, match=problem) as raised:
        load_credentials("main", VenueConfig(exchange="binance", credentials_file=path), {})
    assert "k-secret-value" not in raised.value.message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    venue = VenueConfig(exchange="binance", credentials_file=tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match=r"absent\.toml does not exist"):
        load_credentials("main", venue, {})


def test_the_toml_cannot_hold_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        VenueConfig(exchange="binance", secret="s")  # type: ignore[call-arg]


def test_a_strategy_must_name_a_configured_venue() -> None:
    entry = {
        "id": "live",
        "name": "Live",
        "kind": "sma_crossover",
        "defaults": {"symbols": ["BTC/USDT"], "venue": "main", "real_trading": True},
    }
    with pytest.raises(ValueError, match="venue 'main', which is not in \\[venues\\]"):
        DaemonConfig(strategies=[entry])
    config = DaemonConfig(strategies=[entry], venues={"main": {"exchange": "binance"}})
    assert config.venue_symbols("main") == {"BTC/USDT"}
