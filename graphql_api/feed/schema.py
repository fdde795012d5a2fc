"""The home feed query."""

from __future__ import annotations

import strawberry

from domain.feed import reads
from graphql_api.context import Info, SignedIn
from graphql_api.posts.types import PageReader, Post, load_page, wanted_fields
from graphql_api.relay import Connection, build_connection, decode_cursor, page_size


@strawberry.type
class FeedQueries:
    @strawberry.field(
        description="Posts from the accounts the viewer follows and their own, newest first. "
        "Precomputed by fan-out on write; large accounts are merged in at read time.",
        permission_classes=[SignedIn],
    )
    async def home_feed(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Post]:
        ctx = info.context
        limit = page_size(first)
        wanted = wanted_fields(info)
        feed = await reads.home_feed(
            ctx.state,
            ctx.sessions,
            visibility=ctx.loaders.visibility,
            viewer_id=ctx.signed_in_id,
            before_id=decode_cursor(after),
            limit=limit,
            # Each chunk of entries is read with what this query shows of its posts.
            read_ahead=PageReader(info, wanted),
        )
        posts = {post.row.id: post for post in await load_page(info, feed.posts, wanted)}
        ids = [row.id for row in feed.posts]
        if feed.has_next and not ids and feed.resume_after is not None:
            # A page whose entries were all filtered out still hands out a cursor.
            ids = [feed.resume_after]
        # One sentinel past the page tells build_connection whether there is a next page.
        return build_connection(
            [*ids, 0] if feed.has_next else ids,
            limit=len(ids),
            cursor_of=lambda post_id: post_id,
            node_of=posts.get,
        )
