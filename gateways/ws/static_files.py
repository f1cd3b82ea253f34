"""The dashboard and the browser ``WebSocketService``, served as plain HTTP.

The orchestrator server (8082) answers, before any upgrade, a ``GET /`` that
does not ask for a WebSocket with the dashboard page, and ``GET /static/NAME``
with one of a fixed list of files shipped in ``gateways/web/``. Nothing else is
served: a name that is not on the list (``..``, an encoded slash, anything) is
a 404, because names are looked up, never joined to a path. A WebSocket upgrade
on ``/`` is left alone, so clients connect exactly as before.

``/static/config.json`` is computed at request time by the daemon: the ports
and paths of the three servers (known only once bound) and the symbols of the
feed, so the page can open its connections.
"""

from __future__ import annotations

import email.utils
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources
from urllib.parse import urlsplit

import orjson
import structlog
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

INDEX_PATH = "/"
STATIC_PREFIX = "/static/"
CONFIG_NAME = "config.json"

FILES = (
    "index.html",
    "dashboard.css",
    "dashboard.js",
    "backtests.css",
    "backtests.js",
    "sweeps.css",
    "sweeps.js",
    "open-orders.js",
    "websocket-service.js",
    "websocket-service.d.ts",
    "vendor/lightweight-charts.standalone.production.js",
)
"""Every file that is served, by name; nothing else in the folder is reachable."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".d.ts": "application/typescript; charset=utf-8",
    ".json": "application/json",
}

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""The dashboard loads nothing from elsewhere and runs no inline script; its
WebSockets go to the daemon's other ports, hence ``ws: wss:``."""

WebConfig = Callable[[], Mapping[str, object]]
"""What ``/static/config.json`` shows; called for each request."""

log = structlog.get_logger("gateways.ws.static_files")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str

    @classmethod
    def of(cls, name: str, body: bytes) -> Asset:
        digest = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, content_type(name), f'"{digest}"')


def content_type(name: str) -> str:
    for suffix in sorted(CONTENT_TYPES, key=len, reverse=True):
        if name.endswith(suffix):
            return CONTENT_TYPES[suffix]
    raise ValueError(f"no content type for {name!r}")


def is_upgrade(request: Request) -> bool:
    """Whether the request asks for a WebSocket (``Upgrade: websocket``)."""
    return any(
        token.strip().lower() == "websocket"
        for value in request.headers.get_all("Upgrade")
        for token in value.split(",")
    )


class StaticFiles:
    """Answers plain GETs for the dashboard; leaves every other request alone."""

    def __init__(self, assets: Mapping[str, Asset], web_config: WebConfig) -> None:
        self._assets = dict(assets)
        self._web_config = web_config

    @classmethod
    def from_package(cls, web_config: WebConfig) -> StaticFiles:
        """The files of ``gateways/web``, read once (they are package data)."""
        folder = resources.files("gateways") / "web"
        assets = {name: Asset.of(name, (folder / name).read_bytes()) for name in FILES}
        return cls(assets, web_config)

    def respond(self, request: Request) -> Response | None:
        """The response to a page or file request; None when it is not one
        (a WebSocket upgrade, or a path outside ``/`` and ``/static/``)."""
        if is_upgrade(request):
            return None
        path = urlsplit(request.path).path
        if path == INDEX_PATH:
            name = "index.html"
        elif path.startswith(STATIC_PREFIX):
            name = path.removeprefix(STATIC_PREFIX)
        else:
            return None
        if name == CONFIG_NAME:
            body = orjson.dumps(dict(self._web_config()))
            no_store = {"Cache-Control": "no-store"}
            return _response(HTTPStatus.OK, body, CONTENT_TYPES[".json"], no_store)
        asset = self._assets.get(name)
        if asset is None:
            log.info("static_not_found", path=path[:200])
            body = f"No file {path[:200]} here; the dashboard is at /\n".encode()
            return _response(HTTPStatus.NOT_FOUND, body, "text/plain; charset=utf-8")
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
        if name == "index.html":
            headers["Content-Security-Policy"] = PAGE_POLICY
        if asset.etag in _etags(request.headers.get("If-None-Match")):
            return _response(HTTPStatus.NOT_MODIFIED, b"", None, headers)
        return _response(HTTPStatus.OK, asset.body, asset.content_type, headers)


def _etags(header: str | None) -> set[str]:
    if header is None:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def plain_response(
    status: HTTPStatus, body: str | bytes, kind: str = "text/plain; charset=utf-8"
) -> Response:
    """A complete HTTP response of its own (no upgrade follows), as the pages send."""
    return _response(status, body.encode() if isinstance(body, str) else body, kind)


def _response(
    status: HTTPStatus,
    body: bytes,
    kind: str | None,
    extra: Mapping[str, str] | None = None,
) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ]
    )
    if kind is not None:
        headers["Content-Type"] = kind
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(status.value, status.phrase, headers, body)
