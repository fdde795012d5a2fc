"""Relay plumbing: opaque global ids, keyset cursors, and connection building."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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
        # int() also reads "1_2", " 12", "+12" and other scripts' digits: one id, one spelling.
        if not (raw_id.isascii() and raw_id.isdigit()):
            raise ValueError(raw_id)
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
    has_next: bool | None = None,
) -> Connection[NodeT]:
    """``items`` holds up to ``limit + 1`` rows: the extra one only says there is a next page,
    unless ``has_next`` says it (a list that hides items: ``has_visible_next``).

    Rows whose node resolves to None (deleted, hidden) are dropped from the page but still
    advance the cursor while there is a next page, so a client never sees them and never
    loops. On the last page the end cursor is the last item shown: a page of hidden items
    alone then says nothing at all.
    """
    if has_next is None:
        has_next = len(items) > limit
    page = list(items[:limit])
    edges: list[Edge[NodeT]] = []
    for item in page:
        node = node_of(item)
        if node is not None:
            edges.append(Edge(node=node, cursor=encode(cursor_of(item))))
    if has_next:
        end_cursor = encode(cursor_of(page[-1])) if page else None
    else:
        end_cursor = edges[-1].cursor if edges else None
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=end_cursor,
        ),
    )


# How many more reads, past a page whose next item is hidden, look for a visible one.
MAX_LOOK_AHEAD_READS = 3


async def has_visible_next(
    past_page: Sequence[ItemT],
    *,
    visible: Callable[[Sequence[ItemT]], Awaitable[Sequence[bool]]],
    read_after: Callable[[ItemT, int], Awaitable[Sequence[ItemT]]],
    limit: int,
) -> bool:
    """Whether an item the viewer may see lies past a page: ``hasNextPage`` for a list that
    hides items (blocked authors, private accounts, deleted rows) after reading them.

    ``past_page``: what was read past the page (the ``limit + 1``-th item); when none of it
    is visible, ``read_after`` reads on after an item, ``limit`` at a time (at least
    ``DEFAULT_PAGE_SIZE``), up to ``MAX_LOOK_AHEAD_READS`` times. The common case, a visible
    next item, costs no read. When the bound is hit the answer is true, which Relay allows:
    the next page may then be empty, with a cursor that moves on past the hidden items.
    """
    batch = max(limit, DEFAULT_PAGE_SIZE)
    candidates, reads = past_page, 0
    while candidates:
        if any(await visible(candidates)):
            return True
        if reads == MAX_LOOK_AHEAD_READS:
            return True
        if reads and len(candidates) < batch:
            return False  # the list ended within the last read
        candidates = await read_after(candidates[-1], batch)
        reads += 1
    return False


# The most digits a 64-bit id has: a longer "number" cursor is not one we gave.
MAX_POSITION_DIGITS = 19


def position_cursor(cursor: str | None, *, field: str) -> int | None:
    """A plain-number cursor (a message's seq, a notification's revision): not a secret,
    since the list it pages is the viewer's own and its positions are theirs to see."""
    if cursor is None:
        return None
    # isdigit() alone admits "²", which int() refuses, and Arabic-Indic digits, which it reads.
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > MAX_POSITION_DIGITS:
        raise BadUserInput("This cursor is not one of this list's positions", field=field)
    return int(cursor)


@dataclass(frozen=True)
class TwoWayPage:
    """A page of a list read forward with first/after (catching up from the last cursor
    seen) or back with last/before (the latest, then older), in list order either way."""

    forward: bool
    after: int | None
    before: int | None
    limit: int

    @classmethod
    def of(
        cls, *, first: int | None, after: str | None, last: int | None, before: str | None
    ) -> TwoWayPage:
        after_position = position_cursor(after, field="after")
        before_position = position_cursor(before, field="before")
        if after_position is not None and (last is not None or before_position is not None):
            raise BadUserInput("Page forward (first/after) or back (last/before)", field="after")
        forward = after_position is not None or (first is not None and last is None)
        return cls(
            forward=forward,
            after=after_position,
            before=before_position,
            limit=page_size(first if forward else last),
        )

    @property
    def start(self) -> int | None:
        """Where a forward read starts (0: the beginning); None when reading back."""
        return (self.after or 0) if self.forward else None

    def connection(
        self,
        items: Sequence[ItemT],
        *,
        more: bool,
        node_of: Callable[[ItemT], NodeT],
        position_of: Callable[[ItemT], int],
    ) -> Connection[NodeT]:
        """``items`` is the page; ``more`` says whether the list goes on past it."""
        if self.forward:
            more_after, more_before = more, bool(self.after)
        else:
            more_after, more_before = self.before is not None, more
        edges = [Edge(node=node_of(item), cursor=str(position_of(item))) for item in items]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=more_after,
                has_previous_page=more_before,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )
