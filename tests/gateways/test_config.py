"""The daemon config: embedded defaults, TOML on top, environment on top of that,
unknown keys refused, frozen models, and ``orchestrator check-config``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import BaseModel, ValidationError

from gateways.cli import main as cli
from gateways.config import DaemonConfig, OrchestratorServerConfig, RiskServerConfig, load_config
from orchestrator.model.errors import ConfigError
from orchestrator.strategy.config import StrategyRunConfig

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TOML = REPO / "config" / "orchestrator.toml"
SERVER_NAMES = ("orchestrator", "market_data", "risk")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ORCHESTRATOR_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("ORCHESTRATOR_"):
            monkeypatch.delenv(name)
    yield


def write(tmp_path: Path, text: str, name: str = "orchestrator.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- defaults


def test_embedded_defaults_are_the_documented_addresses() -> None:
    servers = DaemonConfig().servers
    assert (servers.orchestrator.host, servers.orchestrator.port, servers.orchestrator.path) == (
        "127.0.0.1",
        8082,
        "/",
    )
    assert (servers.market_data.host, servers.market_data.port, servers.market_data.path) == (
        "127.0.0.1",
        3001,
        "/ws",
    )
    assert (servers.risk.host, servers.risk.port, servers.risk.path) == ("127.0.0.1", 3002, "/ws")


def test_no_path_means_the_embedded_defaults() -> None:
    assert load_config(None) == DaemonConfig()


@pytest.mark.skipif(not DEFAULT_TOML.exists(), reason="config/orchestrator.toml not written yet")
def test_shipped_config_file_equals_the_embedded_defaults() -> None:
    assert load_config(DEFAULT_TOML) == DaemonConfig()


def test_recording_is_off_and_goes_to_the_state_dir_by_default(tmp_path: Path) -> None:
    assert not DaemonConfig().recording.enabled
    in_state = DaemonConfig(journal={"state_dir": str(tmp_path)}, recording={"enabled": True})
    assert in_state.recording_directory() == tmp_path / "recording"
    xdg = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    assert DaemonConfig().recording_directory(xdg) == tmp_path / "xdg/orchestrator/recording"
    given = DaemonConfig(recording={"directory": str(tmp_path / "rec")})
    assert given.recording_directory() == tmp_path / "rec"


def test_every_config_field_has_a_description() -> None:
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
            for candidate in _model_types(info.annotation):
                walk(candidate)

    walk(DaemonConfig)
    assert OrchestratorServerConfig in seen and StrategyRunConfig in seen


def _model_types(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_model_types(arg))
    return found


# ---------------------------------------------------------------- TOML


def test_toml_overlays_the_defaults_section_by_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[servers.risk]\nport = 4002\n[connections]\nping_interval = 5.0\n")
    config = load_config(path)
    assert config.servers.risk == RiskServerConfig(host="127.0.0.1", port=4002, path="/ws")
    assert config.servers.orchestrator == DaemonConfig().servers.orchestrator
    assert config.connections.ping_interval == 5.0
    assert config.connections.ping_timeout == DaemonConfig().connections.ping_timeout


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("bogus = 1\n", "bogus"),
        ("[servers.orchestrator]\nprot = 8082\n", "servers.orchestrator.prot"),
        ("[connections]\nping_intervall = 1.0\n", "connections.ping_intervall"),
        ("[serverz.risk]\nport = 1\n", "serverz"),
        ("[recording]\nenable = true\n", "recording.enable"),
    ],
)
def test_unknown_keys_are_refused(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert caught.value.code == "config_error"
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{where}:")


def test_every_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[servers.orchestrator]
port = 70000
[connections]
ping_timeout = -1
[[strategies]]
id = "sma"
name = "SMA"
kind = "sma_crossover"
defaults = { symbols = ["AAPL"], data_resolution = "7m" }
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("servers.orchestrator.port:") and "70000" in problems[0]
    assert problems[1].startswith("connections.ping_timeout:")
    assert problems[2].startswith("strategies.sma.defaults.") and "'7m'" in problems[2]


@pytest.mark.parametrize(
    "text",
    [
        "[servers.risk]\nport = 3001\n",
        '[servers.risk]\nport = 3001\nhost = "localhost"\n',
    ],
)
def test_two_servers_on_one_port_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    [problem] = caught.value.problems
    assert problem.startswith("servers:")
    assert "market_data" in problem and "risk" in problem and "3001" in problem


def test_one_port_on_different_addresses_or_port_0_is_fine(tmp_path: Path) -> None:
    text = '[servers.risk]\nport = 3001\nhost = "127.0.0.2"\n'
    assert load_config(write(tmp_path, text)).servers.risk.port == 3001
    zeros = "".join(f"[servers.{name}]\nport = 0\n" for name in SERVER_NAMES)
    assert load_config(write(tmp_path, zeros, "zeros.toml")).servers.risk.port == 0


def test_duplicate_strategy_ids_are_refused(tmp_path: Path) -> None:
    entry = '[[strategies]]\nid = "a"\nname = "A"\nkind = "sma_crossover"\n'
    entry += 'defaults = { symbols = ["AAPL"] }\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, entry + entry))
    assert "repeated: a" in caught.value.problems[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml")
    assert caught.value.message == f"config file {tmp_path / 'absent.toml'} does not exist"


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[servers.orchestrator\nport = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(f"config file {path} is not valid TOML")
    assert "line 1" in caught.value.message


# ---------------------------------------------------------------- environment


def test_environment_overrides_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SERVERS__ORCHESTRATOR__PORT", "9082")
    monkeypatch.setenv("ORCHESTRATOR_LOGGING__LEVEL", "debug")
    config = load_config(None)
    assert config.servers.orchestrator == OrchestratorServerConfig(
        host="127.0.0.1", port=9082, path="/"
    )
    assert config.logging.level == "debug"
    assert config.servers.risk == DaemonConfig.model_construct().servers.risk


def test_environment_wins_over_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[servers.orchestrator]\nport = 9000\nhost = "127.0.0.2"\n'
        "[connections]\nping_timeout = 3.0\n",
    )
    monkeypatch.setenv("ORCHESTRATOR_SERVERS__ORCHESTRATOR__PORT", "9082")
    monkeypatch.setenv("ORCHESTRATOR_CONNECTIONS__PING_INTERVAL", "0.5")
    config = load_config(path)
    assert config.servers.orchestrator == OrchestratorServerConfig(
        host="127.0.0.2", port=9082, path="/"
    )
    assert config.connections.ping_interval == 0.5
    assert config.connections.ping_timeout == 3.0


@pytest.mark.parametrize(
    ("name", "value", "where"),
    [
        ("ORCHESTRATOR_SERVERS__ORCHESTRATOR__PORT", "abc", "servers.orchestrator.port"),
        ("ORCHESTRATOR_SERVERS__RISK__PORT", "65536", "servers.risk.port"),
        ("ORCHESTRATOR_SERVERS__RISK__PROT", "1", "servers.risk.prot"),
        ("ORCHESTRATOR_LOGGING__LEVEL", "loud", "logging.level"),
    ],
)
def test_bad_environment_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, where: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    assert caught.value.message == "invalid configuration in the environment"
    assert [p.split(":")[0] for p in caught.value.problems] == [f"{name} ({where})"]


@pytest.mark.parametrize(
    "name",
    ["ORCHESTRATOR_SERVER__ORCHESTRATOR__PORT", "ORCHESTRATOR_LOGING__LEVEL", "orchestrator_x"],
)
def test_environment_variables_naming_no_section_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "9082")
    with pytest.raises(ConfigError) as caught:
        load_config(None)
    [problem] = caught.value.problems
    assert problem.startswith(f"{name}:")
    assert "servers" in problem  # says which sections exist


def test_unrelated_environment_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATORX", "1")
    monkeypatch.setenv("MY_ORCHESTRATOR_PORT", "1")
    assert load_config(None) == DaemonConfig()


# ---------------------------------------------------------------- frozen


def test_models_are_frozen() -> None:
    config = DaemonConfig()
    with pytest.raises(ValidationError):
        config.servers = config.servers  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.servers.orchestrator.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.connections.ping_interval = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.strategies[0].defaults.symbols = ("X",)  # type: ignore[misc]


# ---------------------------------------------------------------- check-config


def test_check_config_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[servers.orchestrator]\nport = 9082\n")
    assert cli.main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{path}: OK"
    assert "ws://127.0.0.1:9082/" in out
    assert err == ""


def test_check_config_without_a_file_checks_the_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["check-config"]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_config_prints_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        """
[servers.orchestrator]
port = 70000
[servers.risk]
prot = 3002
[[strategies]]
id = "sma"
name = "SMA"
kind = "sma_crossover"
defaults = { symbols = ["AAPL"], data_resolution = "7m" }
""",
    )
    assert cli.main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    header, *problems = err.splitlines()
    assert str(path) in header
    assert len(problems) == 3
    assert problems[0].strip().startswith("servers.orchestrator.port:")
    assert problems[1].strip().startswith("servers.risk.prot:")
    assert "7m" in problems[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "does not exist"),
        ("port = = 1\n", "is not valid TOML"),
    ],
)
def test_check_config_explains_unreadable_files_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, expected: str
) -> None:
    path = tmp_path / "orchestrator.toml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    assert cli.main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert str(path) in lines[0] and expected in lines[0]


BAD_CATALOG = """
[[strategies]]
id = "typo"
name = "Typo in params"
kind = "sma_crossover"
params = { fats = 3, slow = 8 }
defaults = { symbols = ["AAPL"] }

[[strategies]]
id = "backwards"
name = "Fast slower than slow"
kind = "sma_crossover"
params = { fast = 9, slow = 3 }
defaults = { symbols = ["AAPL"] }

[[strategies]]
id = "missing"
name = "No such code"
kind = "no_such_module.sub:Thing"
defaults = { symbols = ["AAPL"] }

[[strategies]]
id = "fine"
name = "Fine"
kind = "rsi_reversion"
defaults = { symbols = ["GOOG"] }
"""


def test_check_config_loads_every_strategy_and_checks_its_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, BAD_CATALOG)
    assert cli.main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    header, *problems = err.splitlines()
    assert str(path) in header
    assert [p.strip().split(":")[0] for p in problems] == [
        "strategies.typo.params.fats",
        "strategies.backwards.params",
        "strategies.missing.kind",
    ]
    assert "no_such_module" in problems[2]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``orchestrator run`` configures structlog for the process; undo it afterwards."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("restore_logging")
def test_run_with_a_bad_config_exits_2_without_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[servers.orchestrator]\nport = -1\n")
    assert cli.main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "servers.orchestrator.port" in err


def test_run_refuses_a_catalog_whose_strategies_cannot_run(tmp_path: Path) -> None:
    servers = "".join(f"[servers.{name}]\nport = 0\n" for name in SERVER_NAMES)
    path = write(tmp_path, servers + BAD_CATALOG)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORCHESTRATOR_")}
    result = subprocess.run(
        [sys.executable, "-m", "gateways", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "strategies.typo.params.fats" in result.stderr
    assert "strategies.missing.kind" in result.stderr


def test_feed_symbols_in_a_file_replace_the_default_symbols(tmp_path: Path) -> None:
    # A file's symbols are the feed's symbols: the embedded ones are not merged in.
    path = write(
        tmp_path,
        '[market_data.feed]\nkind = "synthetic"\n[market_data.feed.symbols]\nBTCUSD = 42000.0\n',
    )
    config = load_config(path)
    assert dict(config.market_data.feed.symbols) == {"BTCUSD": 42000.0}  # type: ignore[union-attr]
