"""Reels queries and mutations."""

from __future__ import annotations

import strawberry

from domain.errors import BadUserInput
from domain.reels import reels
from graphql_api.context import Info, SignedIn
from graphql_api.posts.schema import post_id_from, post_or_not_found
from graphql_api.posts.types import Post, post_connection
from graphql_api.relay import Connection, decode_cursor, encode_cursor, page_size


@strawberry.type
class RecordReelViewPayload:
    post: Post
    view_count: int


@strawberry.type
class ReelQueries:
    @strawberry.field(
        description="Reels from accounts the viewer follows and from others, ranked by "
        "engagement and recency (the viewer's own are left out).",
        permission_classes=[SignedIn],
    )
    async def reels_feed(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Post]:
        ctx = info.context
        limit = page_size(first)
        start = decode_cursor(after)
        offset = 0 if start is None else start + 1
        if offset < 0:
            raise BadUserInput("'after' is not a reels cursor", field="after")
        ranked = await reels.ranked_reel_ids(ctx.state, ctx.sessions, ctx.loaders.visibility)
        page = ranked[offset : offset + limit + 1]
        position = {post_id: offset + index for index, post_id in enumerate(page)}
        return await post_connection(
            info, page, limit=limit, cursors=lambda post_id: encode_cursor(position[post_id])
        )


@strawberry.type
class ReelMutations:
    @strawberry.mutation(
        description="The viewer watched a reel: counted once per viewer.",
        permission_classes=[SignedIn],
    )
    async def record_reel_view(self, info: Info, post_id: strawberry.ID) -> RecordReelViewPayload:
        ctx = info.context
        target = post_id_from(post_id)
        count = await reels.record_view(ctx.state, ctx.sessions, ctx.signed_in_id, target)
        return RecordReelViewPayload(post=await post_or_not_found(info, target), view_count=count)
