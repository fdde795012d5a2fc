"""Relay plumbing: opaque global ids, keyset cursors, and connection building."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from strawberry import relay

from db.ids import is_valid_id
from domain.errors import BadUserInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

NodeT = TypeVar("NodeT")
ItemT = TypeVar("ItemT")
CursorT = TypeVar("CursorT", int, str)


def to_global_id(type_name: str, object_id: int) -> strawberry.ID:
    return strawberry.ID(relay.to_base64(type_name, object_id))


def from_global_id(global_id: str, *, expected: str | None = None) -> tuple[str, int]:
    """Decode ``Type:123``; malformed ids are the client's mistake, not a server error."""
    try:
        type_name, raw_id = relay.from_base64(global_id)
        object_id = int(raw_id)
    except (ValueError, binascii.Error, TypeError):
        raise BadUserInput(f"{global_id!r} is not a valid id", field="id") from None
    if not is_valid_id(object_id):
        raise BadUserInput(f"{global_id!r} is not a valid id", field="id")
    if expected is not None and type_name != expected:
        raise BadUserInput(f"{global_id!r} is a {type_name} id, not a {expected} id", field="id")
    return type_name, object_id


class CursorCodec:
    """Cursors are encrypted and authenticated (AES-SIV): opaque, so a cursor never shows
    the id, time or shard of the row it points after (which may be a hidden row), and
    tamper-proof, so a client can only hand back positions this API gave out.
    Deterministic: the same position always gives the same cursor."""

    def __init__(self, secret: str) -> None:
        key = hashlib.sha512(b"aperture-cursor-v1:" + secret.encode()).digest()
        self._cipher = AESSIV(key)

    def encode(self, kind: bytes, payload: bytes) -> str:
        sealed = self._cipher.encrypt(kind + payload, [_CURSOR_CONTEXT])
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def decode(self, cursor: str, kind: bytes) -> bytes:
        if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
            raise _bad_cursor(cursor)
        try:
            sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            plain = self._cipher.decrypt(sealed, [_CURSOR_CONTEXT])
        except (ValueError, binascii.Error, InvalidTag):
            raise _bad_cursor(cursor) from None
        if not plain.startswith(kind):
            raise _bad_cursor(cursor)
        return plain[len(kind) :]


_CURSOR_CONTEXT = b"aperture-cursor"
MAX_CURSOR_LENGTH = 200
# Replaced at startup by the cluster's secret (``configure_cursors``); until then a
# random one, so cursors are never guessable even in a bare test.
_codec = CursorCodec(secrets.token_hex(32))


def configure_cursors(secret: str) -> None:
    global _codec
    _codec = CursorCodec(secret)


def _bad_cursor(cursor: str) -> BadUserInput:
    shown = cursor if len(cursor) <= 40 else cursor[:40] + "..."
    return BadUserInput(f"{shown!r} is not a cursor from this API", field="after")


def encode_cursor(position: int) -> str:
    return _codec.encode(b"i", position.to_bytes(8, "big", signed=True))


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    return int.from_bytes(_codec.decode(cursor, b"i"), "big", signed=True)


def encode_text_cursor(position: str) -> str:
    return _codec.encode(b"t", position.encode())


def decode_text_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return _codec.decode(cursor, b"t").decode()
    except UnicodeDecodeError:
        raise _bad_cursor(cursor) from None


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0:
        raise BadUserInput("'first' must not be negative", field="first")
    if first > MAX_PAGE_SIZE:
        raise BadUserInput(f"'first' may be at most {MAX_PAGE_SIZE}", field="first")
    return first


@strawberry.type(description="Where a page of a connection sits in the whole list.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="An item of a connection, with the cursor to page after it.")
class Edge(Generic[NodeT]):
    node: NodeT
    cursor: str


@strawberry.type(description="A page of a list, paged forward with first/after.")
class Connection(Generic[NodeT]):
    page_info: PageInfo
    edges: list[Edge[NodeT]]

    @strawberry.field(description="The page's items, without cursors.")
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]


def build_connection(
    items: Sequence[ItemT],
    *,
    limit: int,
    cursor_of: Callable[[ItemT], CursorT],
    node_of: Callable[[ItemT], NodeT | None],
    encode: Callable[[CursorT], str] = encode_cursor,  # type: ignore[assignment]
) -> Connection[NodeT]:
    """``items`` holds up to ``limit + 1`` rows: the extra one only says there is a next page.

    Rows whose node resolves to None (deleted, hidden) are dropped from the page but still
    advance the cursor, so a client never sees them and never loops.
    """
    has_next = len(items) > limit
    page = list(items[:limit])
    edges: list[Edge[NodeT]] = []
    for item in page:
        node = node_of(item)
        if node is not None:
            edges.append(Edge(node=node, cursor=encode(cursor_of(item))))
    end_cursor = encode(cursor_of(page[-1])) if page else None
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=end_cursor,
        ),
    )
