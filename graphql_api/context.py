"""The context of one GraphQL operation: who is calling, shard sessions and fresh
DataLoaders.

Loaders cache what they read, so they must never outlive the operation: a socket that
runs many operations gets a fresh set for each (``OperationScope``), while the caller's
authentication is checked once per request or connection (``graphql_api/auth.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import cached_property
from typing import TypeAlias

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.fastapi import BaseContext

from db.accounts.records import UserRecord
from db.posts.records import CommentRecord, PostRecord
from db.session import ShardSessions
from db.stories.records import StoryRecord
from domain.errors import Unauthenticated
from domain.state import AppState
from domain.visibility import KnownFacts, Visibility, known_or_loaded
from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.auth import ANONYMOUS, Authentication
from graphql_api.media.loaders import MediaLoaders
from graphql_api.messaging.loaders import MessagingLoaders
from graphql_api.posts.loaders import PostLoaders
from graphql_api.stories.loaders import StoryLoaders


class Loaders:
    """Created per operation so that no cached value leaks between viewers or moments.

    Each feature's loaders are made on first use: an operation pays only for the ones it
    reads through, and a socket waiting for its next event holds none."""

    def __init__(self, state: AppState, sessions: ShardSessions, viewer_id: int | None) -> None:
        self._state = state
        self._sessions = sessions
        self._viewer_id = viewer_id

    @cached_property
    def accounts(self) -> AccountLoaders:
        return AccountLoaders(self._state, self._sessions, self._viewer_id)

    @cached_property
    def posts(self) -> PostLoaders:
        return PostLoaders(
            self._state,
            self._sessions,
            self._viewer_id,
            block_set=lambda: self.accounts.viewer_block_set(),
        )

    @cached_property
    def media(self) -> MediaLoaders:
        return MediaLoaders(self._state, self._sessions)

    @cached_property
    def stories(self) -> StoryLoaders:
        return StoryLoaders(self._state, self._sessions, self._viewer_id)

    @cached_property
    def messaging(self) -> MessagingLoaders:
        return MessagingLoaders(self._sessions)

    @cached_property
    def visibility(self) -> Visibility:
        # The one policy, fed by these loaders so that its reads batch with the rest.
        return Visibility(
            _LoaderFacts(
                self._state, self.accounts, self.posts, self.stories, viewer_id=self._viewer_id
            )
        )


class _LoaderFacts:
    """Facts through the operation's loaders, after what a page's planned read found
    (``remember``): those answer from memory, without a future per id."""

    def __init__(
        self,
        state: AppState,
        accounts: AccountLoaders,
        posts: PostLoaders,
        stories: StoryLoaders,
        *,
        viewer_id: int | None,
    ):
        self._state = state
        self._accounts = accounts
        self._posts = posts
        self._stories = stories
        self._viewer_id = viewer_id
        self._known = KnownFacts()

    @property
    def viewer_id(self) -> int | None:
        return self._viewer_id

    def remember(self, known: KnownFacts) -> None:
        self._known.add(known)
        if known.blocked is not None:
            self._accounts.know_block_set(known.blocked)

    async def users(self, ids: Sequence[int]) -> list[UserRecord | None]:
        return await known_or_loaded(self._known.users, ids, self._accounts.user.load_many)

    async def posts(self, ids: Sequence[int]) -> list[PostRecord | None]:
        return await known_or_loaded(self._known.posts, ids, self._posts.post.load_many)

    async def comments(self, ids: Sequence[int]) -> list[CommentRecord | None]:
        return await self._posts.comment.load_many(ids)

    async def follows(self, ids: Sequence[int]) -> list[bool]:
        if not ids:
            return []
        return await known_or_loaded(
            self._known.follows, ids, self._accounts.viewer_follows.load_many
        )

    async def blocked(self) -> set[int]:
        return await self._accounts.viewer_block_set()

    async def stories(self, ids: Sequence[int]) -> list[StoryRecord | None]:
        return await self._stories.story.load_many(ids)

    async def in_close_friends(self, author_ids: Sequence[int]) -> list[bool]:
        return await self._stories.viewer_in_close_friends.load_many(author_ids)

    def now(self) -> datetime:
        return self._state.clock()


class Context(BaseContext):
    def __init__(
        self,
        *,
        state: AppState,
        caller: Authentication | None = None,
        authorization: str | None = None,
        client_ip: str = "unknown",
    ) -> None:
        super().__init__()
        self.state = state
        # No caller yet: the guard checks ``authorization`` together with the operation's
        # rate-limit charge, in one round trip, before anything runs (graphql_api/guard.py).
        self.authorization = authorization
        self.authenticated = caller is not None
        self.caller = caller if caller is not None else ANONYMOUS
        self.viewer_id = self.caller.viewer_id
        # Set when the session's database could not be reached: the endpoint answers 503.
        self.session_unavailable = False
        # The address rate limits key on (uvicorn has already applied trusted proxies).
        self.client_ip = client_ip
        # Strawberry quietly runs the first of several operations when none is named; the
        # guard refuses that ambiguity, as the GraphQL spec does.
        self.operation_name_given = False
        self._operations = 0
        self.sessions = ShardSessions(state.runtime.databases)
        self.loaders = Loaders(state, self.sessions, self.viewer_id)

    def sign_in(self, caller: Authentication) -> None:
        """The caller, once checked: loaders for that viewer (none has read anything)."""
        self.caller = caller
        self.viewer_id = caller.viewer_id
        self.authenticated = True
        self.loaders = Loaders(self.state, self.sessions, self.viewer_id)

    def begin_operation(self) -> None:
        """Fresh sessions and loaders for every operation after the first."""
        if self._operations:
            self.sessions = ShardSessions(self.state.runtime.databases)
            self.loaders = Loaders(self.state, self.sessions, self.viewer_id)
        self._operations += 1

    def fresh_copy(self) -> Context:
        """The same caller with new sessions and loaders: nothing read so far is shared."""
        copy = Context(state=self.state, caller=self.caller, client_ip=self.client_ip)
        copy.authenticated = self.authenticated
        copy.operation_name_given = self.operation_name_given
        return copy

    @property
    def signed_in_id(self) -> int:
        """The viewer's id, in a field guarded by ``SignedIn``."""
        if self.viewer_id is None:
            raise Unauthenticated(self.caller.error) if self.caller.error else Unauthenticated()
        return self.viewer_id


Info: TypeAlias = strawberry.Info[Context, None]


class SignedIn(strawberry.BasePermission):
    """Only for a logged-in viewer: UNAUTHENTICATED otherwise, saying why."""

    def has_permission(self, source: object, info: Info, **kwargs: object) -> bool:
        info.context.signed_in_id  # noqa: B018 (raises the typed error)
        return True


class OperationScope(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            context.begin_operation()
        yield
