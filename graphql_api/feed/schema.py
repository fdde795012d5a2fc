"""The home feed query."""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.feed import service
from graphql_api.posts.types import Post
from graphql_api.relay import Connection, build_connection, decode_cursor, page_size


@strawberry.type
class FeedQueries:
    @strawberry.field(
        description="Posts from the accounts the viewer follows and their own, newest first. "
        "Precomputed by fan-out on write; large accounts are merged in at read time."
    )
    async def home_feed(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Post]:
        ctx = info.context
        viewer_id = ctx.require_viewer()
        limit = page_size(first)
        feed = await service.home_feed(
            ctx.state,
            ctx.sessions,
            accounts=ctx.loaders.accounts,
            posts=ctx.loaders.posts,
            viewer_id=viewer_id,
            before_id=decode_cursor(after),
            limit=limit,
        )
        # One sentinel past the page tells build_connection whether there is a next page.
        rows = feed.posts + ([None] if feed.has_next else [])
        return build_connection(
            rows[: limit + 1] if feed.has_next else rows,
            limit=len(feed.posts),
            cursor_of=lambda row: row.id if row is not None else 0,
            node_of=lambda row: Post(row=row) if row is not None else None,
        )
