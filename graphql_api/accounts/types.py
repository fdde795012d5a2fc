"""GraphQL types for accounts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.accounts.records import UserRecord as UserRow
from domain.accounts import graph
from domain.stories.stories import live_entries
from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.context import Info
from graphql_api.loader import Loaded, then
from graphql_api.media.types import Media, first_media, media_of
from graphql_api.node import Node

# Posts and stories show their authors, and users their posts and stories: the modules
# import each other whole, so either may be imported first, and are read as fields resolve.
from graphql_api.posts import types as posts_types
from graphql_api.relay import (
    MAX_PAGE_SIZE,
    Connection,
    build_connection,
    decode_cursor,
    page_size,
    to_global_id,
)
from graphql_api.stories import types as stories_types

if TYPE_CHECKING:
    from graphql_api.posts.types import Post
    from graphql_api.stories.types import Story


@strawberry.enum(description="How the viewer relates to a user.")
class FollowStatus(enum.Enum):
    SELF = "SELF"
    NONE = "NONE"
    REQUESTED = "REQUESTED"
    FOLLOWING = "FOLLOWING"


def follow_status_of(status: graph.FollowStatus) -> FollowStatus:
    return FollowStatus(status.value)


@strawberry.type(description="A person on Aperture.")
class User(Node):
    row: strawberry.Private[UserRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("User", self.row.id)

    @strawberry.field
    def username(self) -> str:
        return self.row.username

    @strawberry.field
    def full_name(self) -> str:
        return self.row.full_name

    @strawberry.field
    def bio(self) -> str:
        return self.row.bio

    @strawberry.field
    def website(self) -> str:
        return self.row.website

    @strawberry.field
    def is_private(self) -> bool:
        return self.row.is_private

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def follower_count(self) -> int:
        return self.row.follower_count

    @strawberry.field
    def following_count(self) -> int:
        return self.row.following_count

    @strawberry.field
    def post_count(self) -> int:
        return self.row.post_count

    @strawberry.field(graphql_type=bool, description="Whether the viewer follows this user.")
    def viewer_follows(self, info: Info) -> Loaded[bool]:
        return info.context.loaders.of(AccountLoaders).viewer_follows.get(self.row.id)

    @strawberry.field(description="The viewer's relationship to this user.")
    async def follow_status(self, info: Info) -> FollowStatus | None:
        viewer_id = info.context.viewer_id
        if viewer_id is None:
            return None
        if viewer_id == self.row.id:
            return FollowStatus.SELF
        loaders = info.context.loaders.of(AccountLoaders)
        if await loaders.viewer_follows.load(self.row.id):
            return FollowStatus.FOLLOWING
        if await loaders.viewer_requested.load(self.row.id):
            return FollowStatus.REQUESTED
        return FollowStatus.NONE

    @strawberry.field(description="Who follows this user, most recent first.")
    async def followers(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[User] | None:
        return await self._connections(info, graph.Side.FOLLOWERS, first=first, after=after)

    @strawberry.field(description="Whom this user follows, most recent first.")
    async def following(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[User] | None:
        return await self._connections(info, graph.Side.FOLLOWING, first=first, after=after)

    async def _connections(
        self, info: Info, side: graph.Side, *, first: int | None, after: str | None
    ) -> Connection[User]:
        limit = page_size(first)
        rows = await graph.connections_page(
            info.context.sessions,
            info.context.loaders.visibility,
            self.row,
            side=side,
            before_edge_id=decode_cursor(after),
            limit=limit + 1,
        )
        return await user_connection(info, rows, limit)

    @strawberry.field(graphql_type=Media | None, description="The profile picture.")
    def avatar(self, info: Info) -> Loaded[Media | None]:
        if self.row.avatar_media_id is None:
            return None
        return then(media_of(info, [self.row.avatar_media_id], owner=self.row), first_media)

    @strawberry.field(
        description="This user's live stories, oldest first, as far as the viewer may see."
    )
    async def stories(
        self, info: Info, first: int = MAX_PAGE_SIZE
    ) -> list[Annotated[Story, strawberry.lazy("graphql_api.stories.types")]]:
        ctx = info.context
        entries = await live_entries(ctx.state, ctx.sessions, [self.row.id])
        story_ids = [entry.story_id for entry in entries.get(self.row.id, [])]
        return await stories_types.visible_stories(info, story_ids, first=first)

    @strawberry.field(description="This user's posts, newest first (the profile grid).")
    async def posts(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[Post, strawberry.lazy("graphql_api.posts.types")]] | None:
        return await posts_types.profile_posts(info, self.row, first=first, after=after)


def user_or_none(row: UserRow | None) -> User | None:
    return User(row=row) if row is not None else None


def visible_user(info: Info, user_id: int) -> Loaded[User | None]:
    """The user, if the viewer may see them (``Visibility.users``, through its loader)."""
    return then(info.context.loaders.of(AccountLoaders).visible_user.get(user_id), user_or_none)


async def user_connection(info: Info, rows: list[tuple[int, int]], limit: int) -> Connection[User]:
    """(cursor position, user id) rows as a page of the users the viewer may see."""
    users = await info.context.loaders.visibility.users([user_id for _, user_id in rows])
    by_id = {user.id: user for user in users if user is not None}
    return build_connection(
        rows,
        limit=limit,
        cursor_of=lambda row: row[0],
        node_of=lambda row: User(row=by_id[row[1]]) if row[1] in by_id else None,
    )


async def visible_users(info: Info, ids: list[int]) -> list[User]:
    """Those of ``ids`` the viewer may see, in order."""
    rows = await info.context.loaders.of(AccountLoaders).visible_user.load_many(ids)
    return [User(row=row) for row in rows if row is not None]


async def resolve_user_node(info: Info, user_id: int) -> User | None:
    row = await info.context.loaders.of(AccountLoaders).visible_user.load(user_id)
    return user_or_none(row)
