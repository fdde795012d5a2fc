"""The schema: every feature's queries, mutations and subscriptions (declared in
``graphql_api/<feature>/feature.py``) merged into one root each."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache
from strawberry.types.execution import ExecutionContext

from domain.errors import BadUserInput, NotFound
from graphql_api.compiled import CompiledExecution
from graphql_api.context import Info, OperationScope
from graphql_api.error_handling import TypedErrors, log_errors
from graphql_api.features import api_features
from graphql_api.guard import DOCUMENT_CACHE_SIZE, OperationGuard, TokenLimit
from graphql_api.node import Node, resolve_node

MAX_NODES_PER_QUERY = 100


@strawberry.type
class NodeQueries:
    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> Node:
        node: Node = await resolve_node(info, id)
        return node

    @strawberry.field(description="Several objects by global id; null where one is not found.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES_PER_QUERY:
            raise BadUserInput(f"At most {MAX_NODES_PER_QUERY} ids at once", field="ids")

        async def one(global_id: strawberry.ID) -> Node | None:
            try:
                node: Node = await resolve_node(info, global_id)
            except NotFound:
                return None
            return node

        # Concurrently, so that the ids of one type share DataLoader batches.
        return list(await asyncio.gather(*(one(global_id) for global_id in ids)))


def _root(name: str, parts: list[type]) -> type | None:
    """One root type with every feature's fields of that kind, in feature order."""
    if not parts:
        return None
    return strawberry.type(type(name, tuple(parts), {}))


def build_schema() -> strawberry.Schema:
    features = api_features()
    query = strawberry.type(
        type("Query", (NodeQueries, *(f.query for f in features if f.query)), {})
    )
    mutation = _root("Mutation", [f.mutation for f in features if f.mutation])
    subscription = _root("Subscription", [f.subscription for f in features if f.subscription])
    # Factories, not instances: each operation gets fresh extension state.
    extensions: list[Any] = [
        OperationScope,
        TokenLimit,
        lambda: StreamSafeParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        OperationGuard,
        CompiledExecution,
        TypedErrors,
    ]
    return ApertureSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=[kind for feature in features for kind in feature.types],
        extensions=extensions,
    )


class StreamSafeParserCache(ParserCache):
    """Strawberry's ParserCache parses before Strawberry's own error handling: over a
    websocket (``Schema.stream``) a syntax error escaped as an exception, logged at ERROR
    as our failure. A document that does not parse is left to Strawberry, which parses it
    again where the error becomes the operation's (a second parse of refused text only)."""

    def on_parse(self) -> Iterator[None]:
        execution = self.execution_context
        try:
            execution.graphql_document = self.cached_parse_document(
                execution.query, **execution.parse_options
            )
        except GraphQLError:
            execution.graphql_document = None
        yield


class ApertureSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Strawberry logs every error at ERROR with a traceback; a client's mistake is
        # one INFO line, and only our own failures get a traceback.
        log_errors(errors, execution_context)


schema = build_schema()
