"""The schema: every feature's queries and mutations merged into one root each."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from db.shards import UnknownShardError
from graphql_api.accounts.schema import AccountMutations, AccountQueries
from graphql_api.accounts.types import User
from graphql_api.context import Info
from graphql_api.errors import ApertureError, BadUserInput, NotFound
from graphql_api.feed.schema import FeedQueries
from graphql_api.node import Node, resolve_node
from graphql_api.posts.schema import PostMutations, PostQueries
from graphql_api.posts.types import Comment, Post

log = logging.getLogger(__name__)

MAX_NODES_PER_QUERY = 100
DOCUMENT_CACHE_SIZE = 512
LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=12).validation_rules,
    *MaxAliasesLimiter(max_alias_count=30).validation_rules,
]


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
class Query(NodeQueries, AccountQueries, PostQueries, FeedQueries):
    pass


@strawberry.type
class Mutation(AccountMutations, PostMutations):
    pass


class TypedErrors(MaskErrors):
    """Every error leaves with ``extensions.code``; unexpected ones also lose their message,
    which may carry SQL or internals, after being logged."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Internal server error")

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        for error in errors:
            if isinstance(error.original_error, UnknownShardError):
                # An id whose bits name a shard that does not exist names no object.
                error.message = "No object has this id"
                error.extensions = {"code": NotFound.code}
        processed = super()._process_errors(errors)
        for error in processed:
            if not error.extensions or "code" not in error.extensions:
                # No original error: the document itself failed to parse or validate.
                error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_VALIDATION_FAILED"}
        return processed

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        log.error("unexpected error in %s", error.path, exc_info=error.original_error)
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR"}
        return masked


def _is_unexpected(error: GraphQLError) -> bool:
    return error.original_error is not None and not isinstance(
        error.original_error, ApertureError | UnknownShardError
    )


def build_schema() -> strawberry.Schema:
    # Factories, not instances: each request gets fresh extension state. The limit rules
    # are made once: the validation cache is keyed by the rule classes, and a limiter
    # built per request would make a new class each time and never hit.
    extensions: list[Any] = [
        lambda: MaxTokensLimiter(max_token_count=5000),
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: AddValidationRules(LIMIT_RULES),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        TypedErrors,
    ]
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[User, Post, Comment],
        extensions=extensions,
    )


schema = build_schema()
