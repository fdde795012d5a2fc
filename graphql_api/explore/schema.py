"""Explore queries."""

from __future__ import annotations

import strawberry

from domain.errors import BadUserInput
from domain.explore import explore
from graphql_api.accounts.types import User, visible_users
from graphql_api.context import Info, SignedIn
from graphql_api.ids import post_id_from
from graphql_api.posts.types import Post, ranked_post_page
from graphql_api.relay import Connection, decode_cursor, page_size


@strawberry.type
class ExploreQueries:
    @strawberry.field(
        description="Posts from public accounts you don't follow, chosen for you from what "
        "people like, comment on, save and watch (trending until you have done enough), "
        "leaving out what you already liked, saved or watched, with authors spread out.",
        permission_classes=[SignedIn],
    )
    async def explore(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Post]:
        ctx = info.context
        limit = page_size(first)
        start = decode_cursor(after)
        ranked = await explore.ranked_post_ids(
            ctx.state,
            ctx.sessions,
            ctx.loaders.visibility,
            ctx.signed_in_id,
            wanted=(0 if start is None else max(start + 1, 0)) + limit + 1,
        )
        return await ranked_post_page(info, ranked, first=first, after=after)

    @strawberry.field(
        description="More like this: posts people engage with together with this one, "
        "that you may see.",
        permission_classes=[SignedIn],
    )
    async def similar_posts(
        self,
        info: Info,
        post_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Post]:
        ctx = info.context
        ranked = await explore.similar_post_ids(
            ctx.state, ctx.sessions, ctx.loaders.visibility, post_id_from(post_id)
        )
        return await ranked_post_page(info, ranked, first=first, after=after)

    @strawberry.field(
        description="Public accounts you don't follow, whose posts your Explore ranks best.",
        permission_classes=[SignedIn],
    )
    async def suggested_accounts(self, info: Info, first: int = 10) -> list[User]:
        if not 0 <= first <= MAX_SUGGESTIONS:
            raise BadUserInput(f"'first' must be between 0 and {MAX_SUGGESTIONS}", field="first")
        ctx = info.context
        ids = await explore.suggested_account_ids(
            ctx.state, ctx.sessions, ctx.loaders.visibility, ctx.signed_in_id
        )
        return await visible_users(info, ids[:first])


MAX_SUGGESTIONS = 50
