"""Client-to-server messages: pydantic models at the untrusted edge.

``parse_command`` turns one WebSocket frame into a typed command or raises a
:class:`ProtocolError` whose code and message go back to the client. Pure: no
sockets here, so every bad-input case is tested without a server.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from orchestrator.model.errors import OrchestratorError
from orchestrator.model.market import RESOLUTION_SECONDS
from orchestrator.strategy.config import StrategyRunConfig

REQUEST_ID_FIELD = "requestId"


class CommandType(StrEnum):
    GET_ACTIVE_STRATEGIES = "get_active_strategies"
    GET_STRATEGIES = "get_strategies"
    START_STRATEGY = "start_strategy"
    STOP_STRATEGY = "stop_strategy"
    PAUSE_STRATEGY = "pause_strategy"
    GET_INSTRUMENTS = "get_instruments"
    GET_ACCOUNT = "get_account"
    RESUME = "resume"


STRATEGY_COMMANDS = frozenset(CommandType)
"""The commands every server accepts: the strategy commands and stream resume."""


class OrderCommandType(StrEnum):
    """The resting orders' commands, on the orchestrator server (8082)."""

    GET_OPEN_ORDERS = "get_open_orders"
    CANCEL_ORDER = "cancel_order"


class ProtocolError(OrchestratorError):
    """A frame the server cannot act on; answered, never fatal to the connection."""


class InvalidJson(ProtocolError):
    code = "invalid_json"


class BinaryFrame(ProtocolError):
    code = "binary_frame"


class UnknownMessageType(ProtocolError):
    code = "unknown_type"


class InvalidMessage(ProtocolError):
    code = "invalid_message"


class Command(BaseModel):
    """What every command has: its ``type`` (each model narrows it to its own literal)
    and an optional ``requestId``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    type: str
    request_id: str | int | None = Field(None, alias=REQUEST_ID_FIELD)

    @field_validator("request_id", mode="plain")
    @classmethod
    def _check_request_id(cls, value: Any) -> str | int | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and 0 < len(value) <= 128:
            return value
        raise ValueError("requestId must be a string of 1 to 128 characters or an integer")


def refuse_control_characters(text: str) -> str:
    """Free text must print as it reads: a control character (ESC, BEL, CR, newline,
    the C1 set) could steer the terminal of whoever reads it in a log or the CLI."""
    for index, char in enumerate(text):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            raise ValueError(
                f"control character {char!r} at position {index}: free text must be printable"
            )
    return text


PrintableText = AfterValidator(refuse_control_characters)
"""Refuses control characters in a free-text field of a command."""

StrategyId = Annotated[str, Field(min_length=1, max_length=64), PrintableText]
ParamName = Annotated[str, Field(min_length=1, max_length=64), PrintableText]
ParamValue = int | float | bool | Annotated[str, Field(max_length=256), PrintableText]
StrategyParamsIn = Annotated[dict[ParamName, ParamValue], Field(max_length=64)]
"""A strategy's params as a command gives them; their model checks them later."""


class StartStrategyConfig(BaseModel):
    """The optional, possibly partial ``config`` of start_strategy.

    Shapes are checked here; bounds and catalog defaults are applied by the
    registry, so that one model (StrategyRunConfig) owns the rules.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    symbols: list[str] | None = None
    dataResolution: str | None = None
    realTrading: bool | None = None
    venue: str | None = None
    maxPositionValue: float | None = None
    maxOrdersPerMinute: int | None = None
    stopLossPercentage: float | None = None

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


_BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "type")


def start_config_bounds() -> dict[str, Any]:
    """The bounds start_strategy applies to each number of its config (StrategyRunConfig's
    own, from its JSON schema) and the resolutions it accepts, for a client's form to
    check what the server will check."""
    properties = StrategyRunConfig.model_json_schema(by_alias=True)["properties"]
    numbers = {
        name: {key: schema[key] for key in _BOUND_KEYS if key in schema}
        for name, schema in properties.items()
        if schema.get("type") in ("number", "integer")
    }
    return {"resolutions": list(RESOLUTION_SECONDS), "numbers": numbers}


class GetActiveStrategies(Command):
    type: Literal[CommandType.GET_ACTIVE_STRATEGIES]


class GetStrategies(Command):
    type: Literal[CommandType.GET_STRATEGIES]


class LiveStartConfig(StartStrategyConfig):
    """start_strategy's ``config``: a backtest's fields and the strategy's ``params``
    (an extension of the stock-bot config: the params to run with, over the catalog's;
    the registry checks them with the strategy's params model)."""

    params: StrategyParamsIn | None = None


class StartStrategy(Command):
    type: Literal[CommandType.START_STRATEGY]
    id: StrategyId
    config: LiveStartConfig | None = None


class StopStrategy(Command):
    type: Literal[CommandType.STOP_STRATEGY]
    id: StrategyId


class PauseStrategy(Command):
    type: Literal[CommandType.PAUSE_STRATEGY]
    id: StrategyId


class GetInstruments(Command):
    type: Literal[CommandType.GET_INSTRUMENTS]


OrderId = Annotated[str, Field(min_length=1, max_length=64), PrintableText]


class GetOpenOrders(Command):
    """Every resting order, or one strategy's: answered with ``open_orders``."""

    type: Literal[OrderCommandType.GET_OPEN_ORDERS]
    strategyId: StrategyId | None = None


class CancelOrder(Command):
    """Cancel one resting order (a bracket entry's id that filled: the exits it armed);
    answered with ``order_cancelled`` once the cancellation is journaled."""

    type: Literal[OrderCommandType.CANCEL_ORDER]
    orderId: OrderId


class GetAccount(Command):
    type: Literal[CommandType.GET_ACCOUNT]


class ResumeStream(Command):
    """Replay what this server broadcast after ``lastSeq`` of ``epoch``."""

    type: Literal[CommandType.RESUME]
    last_seq: int = Field(alias="lastSeq", ge=0)
    epoch: int = Field(ge=0)
    position: int | None = Field(default=None, ge=0)
    """The last journal position the client saw: after a restart (another epoch) the
    committed messages after it are replayed from the journal."""


StrategyCommand = Annotated[
    GetActiveStrategies
    | GetStrategies
    | StartStrategy
    | StopStrategy
    | PauseStrategy
    | GetInstruments
    | GetAccount
    | ResumeStream,
    Field(discriminator="type"),
]


class CommandParser:
    """Parses the frames of one server, which accepts a fixed set of command types."""

    def __init__(self, adapter: TypeAdapter[Any], accepted: frozenset[str]) -> None:
        self._adapter = adapter
        self._accepted = accepted
        self._accepted_list = ", ".join(sorted(accepted))

    def parse(self, frame: str | bytes) -> Command:
        message = decode_object(frame)
        kind = message.get("type")
        if not isinstance(kind, str):
            raise InvalidMessage(
                'every message needs a "type" string, e.g. "get_active_strategies"'
            )
        if kind not in self._accepted:
            raise UnknownMessageType(
                f"unknown message type {kind[:64]!r}; this server accepts: {self._accepted_list}"
            )
        try:
            command: Command = self._adapter.validate_python(message)
        except ValidationError as exc:
            raise InvalidMessage(describe_message_errors(kind, exc)) from exc
        return command


def decode_object(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, bytes):
        raise BinaryFrame("binary frames are not accepted; send JSON as a text frame")
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the message is not valid JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise InvalidMessage('a message must be a JSON object with a "type" field')
    return message


def request_context(frame: str | bytes) -> tuple[str | None, Any]:
    """Best-effort ``type`` and ``requestId`` of a frame that failed to parse."""
    try:
        message = decode_object(frame)
    except ProtocolError:
        return None, None
    kind = message.get("type")
    request_id = message.get(REQUEST_ID_FIELD)
    return (
        kind[:64] if isinstance(kind, str) else None,
        request_id
        if isinstance(request_id, str | int) and not isinstance(request_id, bool)
        else None,
    )


def describe_message_errors(kind: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        # The discriminator tag is the first location part; people don't need it.
        loc = [str(part) for part in error["loc"] if part != kind]
        where = ".".join(loc) or "message"
        if error["type"] == "missing":
            problems.append(f"field {where!r} is required")
        elif error["type"] == "extra_forbidden":
            problems.append(f"field {where!r} is not allowed")
        else:
            problems.append(f"field {where!r}: {error['msg']}")
    return f"invalid {kind}: " + "; ".join(problems)


STRATEGY_COMMAND_ADAPTER: TypeAdapter[Any] = TypeAdapter(StrategyCommand)
