"""Records: frozen to the type checker, plain slotted values at run time."""

from __future__ import annotations

import pickle
import textwrap
from dataclasses import replace
from pathlib import Path

import mypy.api
import pytest

from orchestrator.model.market import Bar, Tick
from orchestrator.model.orders import Fill, Order, OrderPurpose, Side, TradeStatus


def test_records_compare_and_hash_by_value() -> None:
    first = Tick("AAPL", 150.0, 10.0, 1.0)
    same = Tick("AAPL", 150.0, 10.0, 1.0)
    assert first == same and hash(first) == hash(same)
    assert first != Tick("AAPL", 150.5, 10.0, 1.0)
    assert len({first, same}) == 1


def test_records_are_slotted_and_survive_pickling() -> None:
    order = Order("order_000001", "s1", "AAPL", Side.BUY, 5.0, 1.0, OrderPurpose.SIGNAL)
    assert not hasattr(order, "__dict__")
    assert pickle.loads(pickle.dumps(order)) == order
    assert replace(order, quantity=2.0).quantity == 2.0
    bar = Bar("AAPL", "1m", 60.0, 1.0, 2.0, 0.5, 1.5, 10.0, 4)
    assert pickle.loads(pickle.dumps(bar)) == bar


def test_side_sign_is_plus_one_for_buy_and_minus_one_for_sell() -> None:
    assert (Side.BUY.sign, Side.SELL.sign) == (1, -1)
    assert Side("SELL").sign == -1


def test_mypy_refuses_assigning_a_record_field(tmp_path: Path) -> None:
    source = tmp_path / "assigns.py"
    source.write_text(
        textwrap.dedent(
            """
            from orchestrator.model.orders import Fill

            def tamper(fill: Fill) -> None:
                fill.price = 0.0
            """
        )
    )
    stdout, _, status = mypy.api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(source)]
    )
    assert status == 1, stdout
    assert 'Property "price" defined in "Fill" is read-only' in stdout


@pytest.mark.parametrize("status", list(TradeStatus))
def test_fill_keeps_every_field(status: TradeStatus) -> None:
    fill = Fill("t1", "o1", "s1", "AAPL", Side.SELL, 3.0, 10.0, 0.1, 5.0, status, "why")
    assert (fill.status, fill.reason, fill.side.sign) == (status, "why", -1)
