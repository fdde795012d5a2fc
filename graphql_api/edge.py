"""Headers every answer carries, whatever route or error produced it, and the bounds on
what a connection may send before the app sees a request."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from infra.settings import get_settings

# An API answer is data, never a page: nothing may frame it, sniff it into HTML, or
# leak the URL it came from. The GraphiQL page sets its own, looser, CSP.
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
_HSTS = "max-age=31536000; includeSubDomains"


def error_document(message: str, code: str, **extensions: object) -> bytes:
    """The JSON body of a request refused whole: the shape of a GraphQL error response,
    so a client reads every refusal, from uvicorn's protocol to a resolver, one way."""
    return orjson.dumps(
        {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", _API_CSP)
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", _HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds it lacks: a request's line and headers
    may be at most ``max_header_bytes`` (431 past it, checked before the parser buffers
    them) and must arrive within ``header_timeout_seconds`` (408, so a slow client cannot
    hold a connection half-open forever); its own error answers are JSON, with the
    security headers, like every other refusal."""

    # From the settings unless a subclass fixes them (uvicorn builds protocols itself,
    # from the class, in each worker process).
    max_header_bytes: int | None = None
    header_timeout_seconds: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._max_header_bytes = self.max_header_bytes or settings.max_header_bytes
        self._header_timeout = self.header_timeout_seconds or settings.header_timeout_seconds
        self._reading_headers = True
        self._header_bytes = 0
        self._tail = b""
        self._header_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._reading_headers:
            # Count up to the blank line that ends the headers: the rest is body. The tail
            # of the previous chunk finds a blank line split across two reads.
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = window[-3:]
            if self._header_bytes > self._max_header_bytes:
                self._refuse(431, "REQUEST_HEADER_FIELDS_TOO_LARGE", "The headers are too large")
                return
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self._header_timeout, self._too_slow)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_headers = True
        self._header_bytes = 0
        self._tail = b""

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "BAD_REQUEST", msg)

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._reading_headers and not self.transport.is_closing():
            self._refuse(408, "REQUEST_TIMEOUT", "The request headers took too long to arrive")

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._cancel_header_timer()
        body = error_document(message, code)
        headers = {
            **_HEADERS,
            "Content-Security-Policy": _API_CSP,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
        head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        self.transport.write(head.encode() + b"\r\n" + body)
        self.transport.close()
