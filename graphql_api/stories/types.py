"""GraphQL types for stories and the stories tray."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.stories.records import StoryRecord as StoryRow
from domain.stories import stories
from domain.stories.tray import TrayEntry

# Users show their stories, and stories their authors: the modules import each other
# whole, so either may be imported first, and are read as fields resolve.
from graphql_api.accounts import types as accounts_types
from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.context import Info
from graphql_api.loader import Loaded, fill, then
from graphql_api.media.loaders import MediaLoaders
from graphql_api.media.types import Media, first_media, media_of
from graphql_api.node import Node
from graphql_api.relay import (
    Connection,
    build_connection,
    decode_text_cursor,
    encode_text_cursor,
    page_size,
    to_global_id,
)
from graphql_api.stories.loaders import StoryLoaders

if TYPE_CHECKING:
    from graphql_api.accounts.types import User

# Enough for the tray to open a player at once; the rest come from the author's stories.
STORIES_SHOWN = 10

UserType = Annotated["User", strawberry.lazy("graphql_api.accounts.types")]


@strawberry.enum(description="Who sees a story.")
class StoryAudience(enum.Enum):
    EVERYONE = "everyone"
    CLOSE_FRIENDS = "close_friends"


@strawberry.type(description="A photo or video that disappears 24 hours after it is posted.")
class Story(Node):
    row: strawberry.Private[StoryRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Story", self.row.id)

    @strawberry.field(graphql_type=UserType | None)
    def author(self, info: Info) -> Loaded[UserType | None]:
        return accounts_types.visible_user(info, self.row.author_id)

    @strawberry.field(graphql_type=Media | None)
    def media(self, info: Info) -> Loaded[Media | None]:
        media_ids = [self.row.media_id]
        # Signed or not by its author's account (a visible story's author: read as stored).
        return then(
            info.context.loaders.of(AccountLoaders).user.get(self.row.author_id),
            lambda author: then(media_of(info, media_ids, owner=author), first_media),
        )

    @strawberry.field
    def audience(self) -> StoryAudience:
        return StoryAudience(self.row.audience)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def expires_at(self) -> datetime:
        return self.row.expires_at

    @strawberry.field(graphql_type=bool, description="Whether the viewer has marked it seen.")
    def viewer_has_seen(self, info: Info) -> Loaded[bool]:
        return info.context.loaders.of(StoryLoaders).viewer_has_seen.get(self.row.id)

    @strawberry.field(description="How many people saw it; only its author is told.")
    async def view_count(self, info: Info) -> int | None:
        if not info.context.loaders.visibility.sees_story_views(self.row):
            return None
        (count,) = await stories.view_counts(info.context.sessions, [self.row.id])
        return count

    @strawberry.field(
        description="Who saw it, most recent first; only its author may ask (FORBIDDEN otherwise)."
    )
    async def viewers(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[UserType]:
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
            node_of=lambda row: accounts_types.User(row=by_id[row[1]]) if row[1] in by_id else None,
            encode=encode_text_cursor,
        )


@strawberry.type(description="An account in the stories tray, with its live stories.")
class StoryTrayItem:
    author_id: strawberry.Private[int]
    story_ids: strawberry.Private[list[int]]
    unseen: strawberry.Private[int]
    # Its live stories the viewer may see, oldest first (read for the whole tray page).
    visible: strawberry.Private[list[StoryRow]]

    @strawberry.field(graphql_type=UserType | None)
    def user(self, info: Info) -> Loaded[UserType | None]:
        return accounts_types.visible_user(info, self.author_id)

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
    def stories(self, first: int = STORIES_SHOWN) -> list[Story]:
        return [Story(row=row) for row in self.visible[: page_size(first)]]


async def tray_items(info: Info, entries: Sequence[TrayEntry]) -> list[StoryTrayItem]:
    """The tray page's items, with their authors, visible stories, seen marks and media
    loaded for the whole page at once (a batch each), so their fields find them held."""
    loaders = info.context.loaders
    author_ids = [entry.author_id for entry in entries]
    story_ids = [story_id for entry in entries for story_id in entry.story_ids]
    # The tray read the viewer's seen marks with its entries.
    loaders.of(StoryLoaders).viewer_has_seen.prime_many(
        {story_id: story_id in entry.seen for entry in entries for story_id in entry.story_ids}
    )
    accounts = loaders.of(AccountLoaders)
    await fill((accounts.visible_user, author_ids))
    rows = [row for row in await loaders.visibility.stories(story_ids) if row is not None]
    await fill(
        (accounts.user, author_ids),
        (loaders.of(MediaLoaders).media, [row.media_id for row in rows]),
    )
    by_author: dict[int, list[StoryRow]] = {}
    for row in rows:
        by_author.setdefault(row.author_id, []).append(row)
    return [
        StoryTrayItem(
            author_id=entry.author_id,
            story_ids=entry.story_ids,
            unseen=entry.unseen,
            visible=by_author.get(entry.author_id, []),
        )
        for entry in entries
    ]


async def visible_stories(info: Info, story_ids: list[int], *, first: int) -> list[Story]:
    """The first ``first`` of ``story_ids`` the viewer may see."""
    limit = page_size(first)
    rows = await info.context.loaders.visibility.stories(story_ids)
    return [Story(row=row) for row in rows if row is not None][:limit]


async def resolve_story_node(info: Info, story_id: int) -> Story | None:
    (row,) = await info.context.loaders.visibility.stories([story_id])
    return Story(row=row) if row is not None else None
