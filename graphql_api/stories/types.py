"""GraphQL types for stories and the stories tray."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from db.accounts.records import UserRecord as UserRow
from db.media.records import MediaRecord as MediaRow
from db.stories.records import StoryRecord as StoryRow
from domain.stories import stories
from domain.stories.tray import TrayEntry
from domain.visibility import media_urls_signed
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


@dataclass
class TrayPage:
    """What a page of the tray shows, read in one batch per kind before its fields
    resolve, so they answer from memory: authors, their visible stories, the viewer's
    seen marks and the stories' media."""

    authors: dict[int, UserRow | None] = field(default_factory=dict)
    stories: dict[int, list[StoryRow]] = field(default_factory=dict)  # by author
    seen: set[int] = field(default_factory=set)
    media: dict[int, MediaRow | None] = field(default_factory=dict)


@strawberry.type(description="A photo or video that disappears 24 hours after it is posted.")
class Story(Node):
    row: strawberry.Private[StoryRow]
    page: strawberry.Private[TrayPage | None] = None

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Story", self.row.id)

    @strawberry.field(graphql_type=UserType | None)
    async def author(self, info: Info) -> UserType | None:
        return await _user(info, self.row.author_id)

    @strawberry.field(graphql_type=Media | None)
    def media(self, info: Info) -> Media | Awaitable[Media | None] | None:
        page = self.page
        if page is not None and self.row.media_id in page.media:
            author = page.authors.get(self.row.author_id)
            row = page.media[self.row.media_id]
            if author is not None and row is not None and row.status == "ready":
                return Media(row=row, signed=media_urls_signed(author))
            if author is not None:
                return None
        return self._load_media(info)

    async def _load_media(self, info: Info) -> Media | None:
        author = await info.context.loaders.accounts.user.load(self.row.author_id)
        found = await media_of(info, [self.row.media_id], owner=author)
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

    @strawberry.field(graphql_type=bool, description="Whether the viewer has marked it seen.")
    def viewer_has_seen(self, info: Info) -> bool | Awaitable[bool]:
        if self.page is not None:
            return self.row.id in self.page.seen
        return info.context.loaders.stories.viewer_has_seen.load(self.row.id)

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
    page: strawberry.Private[TrayPage]

    @strawberry.field(graphql_type=UserType | None)
    def user(self, info: Info) -> UserType | Awaitable[UserType | None] | None:
        if self.author_id in self.page.authors:
            from graphql_api.accounts.types import User

            author = self.page.authors[self.author_id]
            return User(row=author) if author is not None else None
        return _user(info, self.author_id)

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
    def stories(self, info: Info, first: int = STORIES_SHOWN) -> list[Story]:
        rows = self.page.stories.get(self.author_id, [])
        return [Story(row=row, page=self.page) for row in rows[: page_size(first)]]


async def tray_items(info: Info, entries: Sequence[TrayEntry]) -> list[StoryTrayItem]:
    """The tray page's items, with their authors, visible stories, seen marks and media
    read ahead in one batch each."""
    loaders = info.context.loaders
    author_ids = [entry.author_id for entry in entries]
    story_ids = [story_id for entry in entries for story_id in entry.story_ids]
    authors = await loaders.visibility.users(author_ids)
    rows = [row for row in await loaders.visibility.stories(story_ids) if row is not None]
    media_ids = list(dict.fromkeys(row.media_id for row in rows))
    media = await loaders.media.media.load_many(media_ids)
    page = TrayPage(
        authors=dict(zip(author_ids, authors, strict=True)),
        seen={story_id for entry in entries for story_id in entry.seen},
        media=dict(zip(media_ids, media, strict=True)),
    )
    for row in rows:
        page.stories.setdefault(row.author_id, []).append(row)
    return [
        StoryTrayItem(
            author_id=entry.author_id,
            story_ids=entry.story_ids,
            unseen=entry.unseen,
            page=page,
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
