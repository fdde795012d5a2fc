"""The schema: every feature's queries and mutations merged into one root each."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache
from strawberry.types.execution import ExecutionContext

from domain.errors import BadUserInput, NotFound
from graphql_api.accounts.schema import AccountMutations, AccountQueries
from graphql_api.accounts.types import User
from graphql_api.compiled import CompiledExecution
from graphql_api.context import Info, OperationScope
from graphql_api.error_handling import TypedErrors, log_errors
from graphql_api.explore.schema import ExploreQueries
from graphql_api.feed.schema import FeedQueries
from graphql_api.guard import DOCUMENT_CACHE_SIZE, OperationGuard, TokenLimit
from graphql_api.media.schema import MediaMutations, MediaQueries
from graphql_api.media.types import Media
from graphql_api.messaging.schema import (
    MessagingMutations,
    MessagingQueries,
    MessagingSubscriptions,
)
from graphql_api.node import Node, resolve_node
from graphql_api.notifications.schema import (
    NotificationMutations,
    NotificationQueries,
    NotificationSubscriptions,
)
from graphql_api.posts.schema import PostMutations, PostQueries
from graphql_api.posts.types import Comment, Post
from graphql_api.reels.schema import ReelMutations, ReelQueries
from graphql_api.stories.schema import StoryMutations, StoryQueries
from graphql_api.stories.types import Story

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


@strawberry.type
class Query(
    NodeQueries,
    AccountQueries,
    PostQueries,
    FeedQueries,
    MediaQueries,
    StoryQueries,
    ReelQueries,
    ExploreQueries,
    MessagingQueries,
    NotificationQueries,
):
    pass


@strawberry.type
class Mutation(
    AccountMutations,
    PostMutations,
    MediaMutations,
    StoryMutations,
    ReelMutations,
    MessagingMutations,
    NotificationMutations,
):
    pass


@strawberry.type
class Subscription(MessagingSubscriptions, NotificationSubscriptions):
    pass


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


def build_schema() -> strawberry.Schema:
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
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[User, Post, Comment, Media, Story],
        extensions=extensions,
    )


schema = build_schema()
