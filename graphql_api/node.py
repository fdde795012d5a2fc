"""The Relay ``Node`` interface and ``node``/``nodes`` lookups by global id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry

from db.ids import shard_of
from domain.errors import NotFound
from graphql_api.context import Info
from graphql_api.relay import from_global_id


@strawberry.interface(description="An object with a globally unique, opaque id.")
class Node:
    @strawberry.field(description="Opaque: pass it back to node(id), never parse it.")
    def id(self) -> strawberry.ID:
        raise NotImplementedError


NodeResolver = Callable[[Info, int], Awaitable[Any]]
_resolvers: dict[str, NodeResolver] = {}


def register_node_type(type_name: str, resolver: NodeResolver) -> None:
    _resolvers[type_name] = resolver


async def resolve_node(info: Info, global_id: str) -> Any:
    type_name, object_id = from_global_id(global_id)
    resolver = _resolvers.get(type_name)
    if resolver is None:
        raise NotFound(f"No object has the id {global_id!r}")
    # The shard is in the id's bits: an id naming a shard that does not exist cannot
    # name an object, whatever its type.
    if not info.context.sessions.shard_map.exists(shard_of(object_id)):
        raise NotFound(f"No object has the id {global_id!r}")
    node = await resolver(info, object_id)
    if node is None:
        raise NotFound(f"No object has the id {global_id!r}")
    return node
