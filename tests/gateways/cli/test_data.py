"""``orchestrator data import``: CSV files to Parquet, the same bars, no overwrite by accident."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateways.cli.main import main
from orchestrator.backtest.engine import BacktestSpec, FileSource, run_backtest
from orchestrator.marketdata.history import load_history, load_ohlcv
from orchestrator.strategy.config import default_catalog

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
START = 1_704_205_800  # 2024-01-02T14:30:00Z


def write_csv(path: Path, rows: int, start: int = START) -> Path:
    lines = []
    for i in range(rows):
        price = 100.0 + (i * 7 % 11) - (i * 3 % 5) * 0.5
        lines.append(f"{start + 60 * i},{price},{price + 1.25},{price - 0.75},{price + 0.5},0,{i}")
    path.write_text(HEADER + "\n".join(lines) + "\n", "utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["data", "import", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_files_become_parquet_files_of_the_same_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aapl, msft = write_csv(tmp_path / "aapl.csv", 40), write_csv(tmp_path / "MSFT.csv", 3)
    out_dir = tmp_path / "parquet"

    code, out, err = run(capsys, str(aapl), str(msft), "--to", str(out_dir))

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{out_dir / 'AAPL.parquet'}: 40 rows of AAPL 1m, "
        "2024-01-02T14:30:00.000Z to 2024-01-02T15:10:00.000Z",
        f"{out_dir / 'MSFT.parquet'}: 3 rows of MSFT 1m, "
        "2024-01-02T14:30:00.000Z to 2024-01-02T14:33:00.000Z",
    ]
    assert load_history(out_dir / "AAPL.parquet", "AAPL") == load_ohlcv(aapl, "AAPL")
    assert load_history(out_dir / "MSFT.parquet", "MSFT") == load_ohlcv(msft, "MSFT")


def test_a_backtest_over_the_import_is_the_backtest_over_the_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "aapl.csv", 200)
    assert run(capsys, str(csv), "--to", str(tmp_path))[0] == 0
    entry = default_catalog()[0]

    def result(source: FileSource) -> dict[str, object]:
        payload = run_backtest(BacktestSpec(strategy=entry, source=source)).to_payload()
        return {k: v for k, v in payload.items() if k != "duration_seconds"}

    parquet = result(FileSource(path=tmp_path / "AAPL.parquet"))
    assert parquet == result(FileSource(kind="csv", path=csv))
    assert parquet["fills"] != 0


def test_an_existing_file_is_kept_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "aapl.csv", 5)
    target = tmp_path / "AAPL.parquet"
    target.write_bytes(b"mine")

    code, out, err = run(capsys, str(csv), "--to", str(tmp_path))

    assert (code, out) == (1, "")
    assert f"{target} exists; add --force to overwrite" in err
    assert target.read_bytes() == b"mine"
    assert run(capsys, str(csv), "--to", str(tmp_path), "--force")[0] == 0
    assert len(load_history(target, "AAPL")) == 5


def test_a_bad_file_writes_nothing_and_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_csv(tmp_path / "aapl.csv", 5)
    bad = tmp_path / "msft.csv"
    bad.write_text(HEADER + f"{START},1,1,1,one,1,1\n", "utf-8")

    code, out, err = run(capsys, str(good), str(bad), "--to", str(tmp_path / "out"))

    assert (code, out) == (2, "")
    assert f"{bad}:2: close 'one' is not a number" in err
    assert not (tmp_path / "out").exists()


def test_symbol_names_the_symbol_of_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "prices 2024.csv", 5)

    code, _, err = run(capsys, str(csv), "--to", str(tmp_path))
    assert code == 2
    assert "the file name is no ticker; give --symbol" in err

    assert run(capsys, str(csv), "--to", str(tmp_path), "--symbol", "brk.b")[0] == 0
    assert len(load_history(tmp_path / "BRK.B.parquet", "BRK.B")) == 5
    code, _, err = run(capsys, str(csv), str(csv), "--to", str(tmp_path), "--symbol", "X")
    assert code == 2
    assert "--symbol names the symbol of one file" in err


def test_a_missing_to_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["data", "import", str(tmp_path / "a.csv")])

    assert caught.value.code == 2
    assert "orchestrator data import" in capsys.readouterr().err
