"""Two daemons of one user on one machine: other ports and another state
directory are all the second one needs (its NNG sockets follow its state dir)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from gateways.cli import main as cli
from gateways.config import DaemonConfig, default_runtime_dir, instance_dir_name
from gateways.daemon import Daemon, serve_until_signalled
from orchestrator.model.clock import ManualClock
from tests.support import START, test_config


def nng_daemon_config(**journal: Any) -> DaemonConfig:
    """NNG on its default addresses, both sockets (publisher and ingest), ports 0."""
    return test_config(
        nng={"enabled": True},
        market_data={"feed": {"kind": "nng"}},
        journal={"synchronous": "NORMAL", **journal},
    )


@pytest.fixture
def no_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A desktop session: no $RUNTIME_DIRECTORY, a short $XDG_RUNTIME_DIR of the test's own."""
    runtime = tmp_path_factory.mktemp("xdg")
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime


async def test_two_daemons_with_other_ports_and_state_dirs_both_come_up(
    no_systemd: Path, tmp_path: Path
) -> None:
    first = Daemon(nng_daemon_config(), clock=ManualClock(START))  # the default state dir
    second = Daemon(nng_daemon_config(state_dir=tmp_path / "second"), clock=ManualClock(START))
    await first.start()
    try:
        await second.start()
        try:
            assert first.nng is not None and second.nng is not None
            assert first.nng.address == f"ipc://{no_systemd / 'orchestrator' / 'events.ipc'}"
            assert second.nng.address != first.nng.address
            assert first.feed is not None and second.feed is not None
            assert second.feed.address != first.feed.address
            assert all(s.serving for s in [*first.servers.values(), *second.servers.values()])
        finally:
            await second.stop()
    finally:
        await first.stop()


def test_the_nng_sockets_follow_the_state_dir_unless_systemd_says_where(tmp_path: Path) -> None:
    desktop = {"XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/me"}
    default = test_config(journal={"state_dir": "/home/me/.local/state/orchestrator"})
    other = test_config(journal={"state_dir": str(tmp_path / "paper-2")})
    assert default.nng_publish_address(desktop) == "ipc:///run/user/1000/orchestrator/events.ipc"
    name = instance_dir_name(tmp_path / "paper-2")
    assert name.startswith("paper-2-")
    assert other.nng_publish_address(desktop) == (
        f"ipc:///run/user/1000/orchestrator/{name}/events.ipc"
    )
    assert other.nng_ingest_address(desktop) == (
        f"ipc:///run/user/1000/orchestrator/{name}/ingest.ipc"
    )
    systemd = {**desktop, "RUNTIME_DIRECTORY": "/run/orchestrator-paper"}
    assert other.nng_publish_address(systemd) == "ipc:///run/orchestrator-paper/events.ipc"
    explicit = test_config(
        journal={"state_dir": str(tmp_path / "paper-2")},
        nng={"publish_address": "ipc:///srv/bus/events.ipc"},
    )
    assert explicit.nng_publish_address(desktop) == "ipc:///srv/bus/events.ipc"


def test_an_instance_subdirectory_keeps_ipc_paths_short() -> None:
    deep = Path("/srv") / ("very-long-directory-name-" * 6) / "state"
    path = default_runtime_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}, deep) / "ingest.ipc"
    assert len(str(path).encode()) <= 103


async def test_an_nng_bind_failure_names_the_address_and_the_settings_that_move_it(
    tmp_path: Path,
) -> None:
    address = f"ipc://{tmp_path / 'shared.ipc'}"
    first = Daemon(
        test_config(nng={"enabled": True, "publish_address": address}), clock=ManualClock(START)
    )
    second = Daemon(
        test_config(nng={"enabled": True, "publish_address": address}), clock=ManualClock(START)
    )
    await first.start()
    try:
        with structlog.testing.capture_logs() as logs:
            code = await serve_until_signalled(second)
    finally:
        await first.stop()
    assert code == 2
    [line] = [entry for entry in logs if entry["event"] == "bind_failed"]
    assert line["server"] == "nng_publisher"
    assert line["address"] == address
    assert "port" not in line and "host" not in line
    assert line["settings"] == ["nng.publish_address", "nng.runtime_dir"]
    assert "nng.publish_address" in line["hint"]
    # Its own state_dir would not move an address set by hand: the hint does not offer it.
    assert "journal.state_dir" not in line["hint"]


def test_check_config_prints_the_nng_addresses(
    no_systemd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "second"
    path = tmp_path / "orchestrator.toml"
    path.write_text(
        f'[journal]\nstate_dir = "{state}"\n[market_data.feed]\nkind = "nng"\n', encoding="utf-8"
    )
    assert cli.main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    runtime = no_systemd / "orchestrator" / instance_dir_name(state)
    assert f"  nng publish   ipc://{runtime / 'events.ipc'}\n" in out
    assert f"  nng ingest    ipc://{runtime / 'ingest.ipc'}\n" in out


async def test_a_clash_on_the_default_address_suggests_an_own_state_dir(no_systemd: Path) -> None:
    # No journal, so nothing stops the second daemon before its NNG sockets.
    config = nng_daemon_config(enabled=False)
    first = Daemon(config, clock=ManualClock(START))
    await first.start()
    try:
        with structlog.testing.capture_logs() as logs:
            code = await serve_until_signalled(Daemon(config, clock=ManualClock(START)))
    finally:
        await first.stop()
    assert code == 2
    [line] = [entry for entry in logs if entry["event"] == "bind_failed"]
    assert line["server"] == "nng_ingest"  # the feed listens first
    assert line["address"] == f"ipc://{no_systemd / 'orchestrator' / 'ingest.ipc'}"
    assert line["settings"] == ["market_data.feed.address", "nng.runtime_dir"]
    assert "its own journal.state_dir" in line["hint"]
