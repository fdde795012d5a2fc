"""Relay plumbing: opaque global ids, keyset cursors, and connection building."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry
from strawberry import relay

from db.ids import is_valid_id
from graphql_api.errors import BadUserInput

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


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"c:{position}".encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        prefix, raw = base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)
        if prefix != "c":
            raise ValueError(prefix)
        return int(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput(f"{cursor!r} is not a cursor from this API", field="after") from None


def encode_text_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(f"t:{position}".encode()).decode()


def decode_text_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        prefix, raw = base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        prefix, raw = "", ""
    if prefix != "t":
        raise BadUserInput(f"{cursor!r} is not a cursor from this API", field="after")
    return raw


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
