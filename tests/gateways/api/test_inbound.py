"""Parsing client frames into typed commands, without a socket."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateways.api.inbound import (
    STRATEGY_COMMAND_ADAPTER,
    STRATEGY_COMMANDS,
    BinaryFrame,
    CommandParser,
    CommandType,
    GetActiveStrategies,
    GetStrategies,
    InvalidJson,
    InvalidMessage,
    PauseStrategy,
    ProtocolError,
    StartStrategy,
    StopStrategy,
    UnknownMessageType,
    request_context,
)
from orchestrator.model.errors import OrchestratorError


@pytest.fixture
def parser() -> CommandParser:
    return CommandParser(STRATEGY_COMMAND_ADAPTER, STRATEGY_COMMANDS)


def frame(message: Any) -> str:
    return orjson.dumps(message).decode()


def test_the_commands_every_server_accepts() -> None:
    assert {str(c) for c in STRATEGY_COMMANDS} == {
        "get_active_strategies",
        "get_strategies",
        "start_strategy",
        "stop_strategy",
        "pause_strategy",
        "get_instruments",
        "get_account",
        "resume",
    }


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "get_active_strategies"}, GetActiveStrategies),
        ({"type": "get_strategies"}, GetStrategies),
        ({"type": "start_strategy", "id": "s"}, StartStrategy),
        ({"type": "stop_strategy", "id": "s"}, StopStrategy),
        ({"type": "pause_strategy", "id": "s"}, PauseStrategy),
    ],
)
def test_each_command_parses_to_its_model(
    parser: CommandParser, message: dict[str, Any], expected: type
) -> None:
    command = parser.parse(frame(message))
    assert type(command) is expected
    assert command.request_id is None
    assert command.type == CommandType(message["type"])  # type: ignore[attr-defined]


def test_start_strategy_as_in_the_stock_bot_document(parser: CommandParser) -> None:
    command = parser.parse(
        frame(
            {
                "type": "start_strategy",
                "id": "strategy-id",
                "config": {
                    "symbols": ["AAPL", "MSFT"],
                    "dataResolution": "1m",
                    "realTrading": False,
                    "maxPositionValue": 10000,
                    "maxOrdersPerMinute": 5,
                    "stopLossPercentage": 0.02,
                },
            }
        )
    )
    assert isinstance(command, StartStrategy)
    assert command.id == "strategy-id"
    assert command.config is not None
    assert command.config.overrides() == {
        "symbols": ["AAPL", "MSFT"],
        "dataResolution": "1m",
        "realTrading": False,
        "maxPositionValue": 10000.0,
        "maxOrdersPerMinute": 5,
        "stopLossPercentage": 0.02,
    }


def test_partial_and_empty_configs_keep_only_what_was_sent(parser: CommandParser) -> None:
    partial = parser.parse(frame({"type": "start_strategy", "id": "s", "config": {"symbols": []}}))
    assert isinstance(partial, StartStrategy) and partial.config is not None
    assert partial.config.overrides() == {"symbols": []}
    empty = parser.parse(frame({"type": "start_strategy", "id": "s", "config": {}}))
    assert isinstance(empty, StartStrategy) and empty.config is not None
    assert empty.config.overrides() == {}
    null = parser.parse(frame({"type": "start_strategy", "id": "s", "config": None}))
    assert isinstance(null, StartStrategy) and null.config is None


@pytest.mark.parametrize("request_id", ["abc", "x" * 128, 0, -5, 42, 2**63])
def test_request_ids_strings_and_integers(parser: CommandParser, request_id: str | int) -> None:
    command = parser.parse(frame({"type": "get_strategies", "requestId": request_id}))
    assert command.request_id == request_id
    assert type(command.request_id) is type(request_id)


@pytest.mark.parametrize("request_id", ["", "x" * 129, True, 1.5, [], {}])
def test_bad_request_ids(parser: CommandParser, request_id: Any) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parser.parse(frame({"type": "get_strategies", "requestId": request_id}))
    assert "requestId" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "error", "code"),
    [
        ("{not json", InvalidJson, "invalid_json"),
        ("", InvalidJson, "invalid_json"),
        (b'{"type": "get_strategies"}', BinaryFrame, "binary_frame"),
        ("[1, 2]", InvalidMessage, "invalid_message"),
        ('"get_strategies"', InvalidMessage, "invalid_message"),
        ("{}", InvalidMessage, "invalid_message"),
        ('{"type": 5}', InvalidMessage, "invalid_message"),
        ('{"type": "launch_rockets"}', UnknownMessageType, "unknown_type"),
        ('{"type": "GET_STRATEGIES"}', UnknownMessageType, "unknown_type"),
        ('{"type": "stop_strategy"}', InvalidMessage, "invalid_message"),
        ('{"type": "stop_strategy", "id": 5}', InvalidMessage, "invalid_message"),
        ('{"type": "stop_strategy", "id": ""}', InvalidMessage, "invalid_message"),
        ('{"type": "stop_strategy", "id": "s", "extra": 1}', InvalidMessage, "invalid_message"),
        ('{"type": "get_strategies", "id": "s"}', InvalidMessage, "invalid_message"),
        ('{"type": "start_strategy", "id": "s", "config": []}', InvalidMessage, "invalid_message"),
        (
            '{"type": "start_strategy", "id": "s", "config": {"symbols": "AAPL"}}',
            InvalidMessage,
            "invalid_message",
        ),
        (
            '{"type": "start_strategy", "id": "s", "config": {"maxOrdersPerMinute": "5"}}',
            InvalidMessage,
            "invalid_message",
        ),
        (
            '{"type": "start_strategy", "id": "s", "config": {"realTrading": "yes"}}',
            InvalidMessage,
            "invalid_message",
        ),
        (
            '{"type": "start_strategy", "id": "s", "config": {"maxPositionValue": true}}',
            InvalidMessage,
            "invalid_message",
        ),
        (
            '{"type": "start_strategy", "id": "s", "config": {"leverage": 10}}',
            InvalidMessage,
            "invalid_message",
        ),
    ],
)
def test_bad_frames_raise_protocol_errors_with_stable_codes(
    parser: CommandParser, raw: str | bytes, error: type[ProtocolError], code: str
) -> None:
    with pytest.raises(error) as caught:
        parser.parse(raw)
    assert caught.value.code == code
    assert isinstance(caught.value, OrchestratorError)
    assert caught.value.message  # a sentence a person can act on


def test_messages_name_the_field_and_the_problem(parser: CommandParser) -> None:
    def message(raw: dict[str, Any]) -> str:
        with pytest.raises(InvalidMessage) as caught:
            parser.parse(frame(raw))
        return caught.value.message

    assert message({"type": "stop_strategy"}) == "invalid stop_strategy: field 'id' is required"
    assert (
        message({"type": "stop_strategy", "id": "s", "x": 1})
        == "invalid stop_strategy: field 'x' is not allowed"
    )
    assert "field 'config.maxOrdersPerMinute'" in message(
        {"type": "start_strategy", "id": "s", "config": {"maxOrdersPerMinute": 1.5}}
    )


def test_unknown_type_lists_what_the_server_accepts(parser: CommandParser) -> None:
    with pytest.raises(UnknownMessageType) as caught:
        parser.parse(frame({"type": "x" * 1000}))
    assert "get_active_strategies" in caught.value.message
    assert len(caught.value.message) < 400


def test_a_parser_only_accepts_its_own_types() -> None:
    narrow = CommandParser(STRATEGY_COMMAND_ADAPTER, frozenset({"get_strategies"}))
    assert isinstance(narrow.parse(frame({"type": "get_strategies"})), GetStrategies)
    with pytest.raises(UnknownMessageType):
        narrow.parse(frame({"type": "get_active_strategies"}))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "stop_strategy", "requestId": "r1"}', ("stop_strategy", "r1")),
        ('{"type": "whatever", "requestId": 7}', ("whatever", 7)),
        ('{"type": 5, "requestId": true}', (None, None)),
        ('{"requestId": [1]}', (None, None)),
        ("not json", (None, None)),
        (b"{}", (None, None)),
        ("[]", (None, None)),
    ],
)
def test_request_context_of_a_failed_frame(
    raw: str | bytes, expected: tuple[str | None, Any]
) -> None:
    assert request_context(raw) == expected
