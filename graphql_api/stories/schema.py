"""Story queries and mutations."""

from __future__ import annotations

import strawberry

from domain.errors import BadUserInput
from domain.stories import reads, stories, tray
from graphql_api.accounts.types import User
from graphql_api.context import Info, SignedIn
from graphql_api.ids import media_id_from, story_id_from, user_id_from
from graphql_api.node import register_node_type
from graphql_api.relay import (
    Connection,
    build_connection,
    decode_cursor,
    encode_cursor,
    page_size,
)
from graphql_api.stories.types import (
    Story,
    StoryAudience,
    StoryTrayItem,
    resolve_story_node,
    tray_items,
)

MAX_CLOSE_FRIEND_IDS = stories.MAX_CLOSE_FRIENDS_CHANGE

register_node_type("Story", resolve_story_node)


@strawberry.input
class CreateStoryInput:
    media_id: strawberry.ID = strawberry.field(description="A processed upload of yours.")
    audience: StoryAudience = StoryAudience.EVERYONE


@strawberry.type
class StoryPayload:
    story: Story


@strawberry.type
class DeleteStoryPayload:
    deleted_story_id: strawberry.ID


@strawberry.type
class CloseFriendsPayload:
    close_friends: list[User]


async def _users(info: Info, ids: set[int]) -> list[User]:
    rows = await info.context.loaders.visibility.users(sorted(ids))
    return [User(row=row) for row in rows if row is not None]


@strawberry.type
class StoryQueries:
    @strawberry.field(
        description="Your stories, then accounts you follow with live stories: unseen "
        "first, then newest.",
        permission_classes=[SignedIn],
    )
    async def stories_tray(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[StoryTrayItem]:
        ctx = info.context
        limit = page_size(first)
        start = decode_cursor(after)
        offset = 0 if start is None else start + 1
        if offset < 0:
            raise BadUserInput("'after' is not a tray cursor", field="after")
        entries = await tray.tray(ctx.state, ctx.sessions, ctx.loaders.visibility, ctx.signed_in_id)
        page = list(enumerate(entries))[offset : offset + limit + 1]
        items = await tray_items(info, [entry for _, entry in page[:limit]])
        nodes = dict(zip((index for index, _ in page), items, strict=False))
        return build_connection(
            page,
            limit=limit,
            cursor_of=lambda item: item[0],
            node_of=lambda item: nodes[item[0]],
            encode=encode_cursor,
        )

    @strawberry.field(
        description="Who sees your close-friends stories.", permission_classes=[SignedIn]
    )
    async def close_friends(self, info: Info) -> list[User]:
        ctx = info.context
        ids = await reads.close_friend_ids(ctx.state, ctx.sessions, ctx.signed_in_id)
        return await _users(info, ids)


@strawberry.type
class StoryMutations:
    @strawberry.mutation(
        description="Post a story from a processed upload: it disappears after 24 hours.",
        permission_classes=[SignedIn],
    )
    async def create_story(self, info: Info, input: CreateStoryInput) -> StoryPayload:
        ctx = info.context
        row = await stories.create_story(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            media_id=media_id_from(input.media_id),
            audience=input.audience.value,
        )
        return StoryPayload(story=Story(row=row))

    @strawberry.mutation(description="The viewer saw a story.", permission_classes=[SignedIn])
    async def mark_story_seen(self, info: Info, story_id: strawberry.ID) -> StoryPayload:
        ctx = info.context
        row = await stories.mark_seen(
            ctx.state, ctx.sessions, ctx.signed_in_id, story_id_from(story_id)
        )
        return StoryPayload(story=Story(row=row))

    @strawberry.mutation(permission_classes=[SignedIn])
    async def delete_story(self, info: Info, id: strawberry.ID) -> DeleteStoryPayload:
        ctx = info.context
        await stories.delete_story(ctx.state, ctx.sessions, ctx.signed_in_id, story_id_from(id))
        return DeleteStoryPayload(deleted_story_id=id)

    @strawberry.mutation(
        description="Add people to (and remove them from) your close friends.",
        permission_classes=[SignedIn],
    )
    async def set_close_friends(
        self,
        info: Info,
        add: list[strawberry.ID] | None = None,
        remove: list[strawberry.ID] | None = None,
    ) -> CloseFriendsPayload:
        ctx = info.context
        add, remove = add or [], remove or []
        if len(add) + len(remove) > MAX_CLOSE_FRIEND_IDS:
            raise BadUserInput(f"Change at most {MAX_CLOSE_FRIEND_IDS} close friends at once")
        ids = await stories.change_close_friends(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            add=[user_id_from(user_id) for user_id in add],
            remove=[user_id_from(user_id) for user_id in remove],
        )
        return CloseFriendsPayload(close_friends=await _users(info, ids))
