"""Reels queries and mutations."""

from __future__ import annotations

import strawberry

from domain.reels import reels
from graphql_api.context import Info, SignedIn
from graphql_api.ids import post_id_from
from graphql_api.posts.schema import post_or_not_found
from graphql_api.posts.types import Post, ranked_post_page
from graphql_api.relay import Connection


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
        ranked = await reels.ranked_reel_ids(ctx.state, ctx.sessions, ctx.loaders.visibility)
        return await ranked_post_page(info, ranked, first=first, after=after)


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
