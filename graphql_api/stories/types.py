"""GraphQL types for stories and the stories tray."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.stories.records import StoryRecord as StoryRow
from domain.stories import stories
from graphql_api.context import Info
from graphql_api.media.types import Media, media_of
from graphql_api.node import Node
from graphql_api.relay import (
    Connection,
    build_connection,
    decode_text_cursor,
    encode_text_cursor,
    page_size,
    to_global_id,
)

if TYPE_CHECKING:
    from graphql_api.accounts.types import User

# Enough for the tray to open a player at once; the rest come from the author's stories.
STORIES_SHOWN = 10

UserType = Annotated["User", strawberry.lazy("graphql_api.accounts.types")]


@strawberry.enum(description="Who sees a story.")
class StoryAudience(enum.Enum):
    EVERYONE = "everyone"
    CLOSE_FRIENDS = "close_friends"


async def _user(info: Info, user_id: int) -> UserType | None:
    from graphql_api.accounts.types import User

    row = await info.context.loaders.visibility.user(user_id)
    return User(row=row) if row is not None else None


@strawberry.type(description="A photo or video that disappears 24 hours after it is posted.")
class Story(Node):
    row: strawberry.Private[StoryRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Story", self.row.id)

    @strawberry.field(graphql_type=UserType | None)
    async def author(self, info: Info) -> UserType | None:
        return await _user(info, self.row.author_id)

    @strawberry.field
    async def media(self, info: Info) -> Media | None:
        author = await info.context.loaders.accounts.user.load(self.row.author_id)
        private = author is not None and author.is_private
        found = await media_of(info, [self.row.media_id], owner_private=private)
        return found[0] if found else None

    @strawberry.field
    def audience(self) -> StoryAudience:
        return StoryAudience(self.row.audience)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def expires_at(self) -> datetime:
        return self.row.expires_at

    @strawberry.field(description="Whether the viewer has marked it seen.")
    async def viewer_has_seen(self, info: Info) -> bool:
        return await info.context.loaders.stories.viewer_has_seen.load(self.row.id)

    @strawberry.field(description="How many people saw it; only its author is told.")
    async def view_count(self, info: Info) -> int | None:
        if info.context.viewer_id != self.row.author_id:
            return None
        (count,) = await stories.view_counts(info.context.sessions, [self.row.id])
        return count

    @strawberry.field(
        description="Who saw it, most recent first; only its author may ask (FORBIDDEN otherwise)."
    )
    async def viewers(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[UserType]:
        from graphql_api.accounts.types import User

        ctx = info.context
        limit = page_size(first)
        position = decode_text_cursor(after)
        rows = await stories.story_viewers(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            self.row.id,
            after=stories.parse_position(position),
            limit=limit + 1,
        )
        users = await ctx.loaders.visibility.users([viewer for _, viewer in rows])
        by_id = {user.id: user for user in users if user is not None}
        return build_connection(
            rows,
            limit=limit,
            cursor_of=lambda row: f"{row[0]!r}:{row[1]}",
            node_of=lambda row: User(row=by_id[row[1]]) if row[1] in by_id else None,
            encode=encode_text_cursor,
        )


@strawberry.type(description="An account in the stories tray, with its live stories.")
class StoryTrayItem:
    author_id: strawberry.Private[int]
    story_ids: strawberry.Private[list[int]]
    unseen: strawberry.Private[int]

    @strawberry.field(graphql_type=UserType | None)
    async def user(self, info: Info) -> UserType | None:
        return await _user(info, self.author_id)

    @strawberry.field(description="Whether any of its stories is new to the viewer.")
    def has_unseen(self) -> bool:
        return self.unseen > 0

    @strawberry.field
    def unseen_count(self) -> int:
        return self.unseen

    @strawberry.field
    def story_count(self) -> int:
        return len(self.story_ids)

    @strawberry.field(description="Its first live stories, oldest first: the order they play in.")
    async def stories(self, info: Info, first: int = STORIES_SHOWN) -> list[Story]:
        return await visible_stories(info, self.story_ids, first=first)


async def visible_stories(info: Info, story_ids: list[int], *, first: int) -> list[Story]:
    """The first ``first`` of ``story_ids`` the viewer may see."""
    limit = page_size(first)
    rows = await info.context.loaders.visibility.stories(story_ids)
    return [Story(row=row) for row in rows if row is not None][:limit]


async def resolve_story_node(info: Info, story_id: int) -> Story | None:
    (row,) = await info.context.loaders.visibility.stories([story_id])
    return Story(row=row) if row is not None else None
