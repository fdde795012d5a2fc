"""Post queries and mutations."""

from __future__ import annotations

import strawberry

from domain.errors import BadUserInput, NotFound
from domain.posts import comments, likes, posts, saved
from graphql_api.context import Info, SignedIn
from graphql_api.ids import comment_id_from, media_id_from, post_id_from
from graphql_api.node import register_node_type
from graphql_api.posts.types import (
    Comment,
    Post,
    post_connection,
    resolve_comment_node,
    resolve_post_node,
)
from graphql_api.relay import (
    Connection,
    decode_cursor,
    decode_text_cursor,
    encode_text_cursor,
    page_size,
    to_global_id,
)

register_node_type("Post", resolve_post_node)
register_node_type("Comment", resolve_comment_node)


@strawberry.input
class CreatePostInput:
    caption: str = ""
    media_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="Up to 10 processed uploads (createUpload, finalizeUpload), in order. "
        "One video makes the post a reel.",
    )


@strawberry.type
class PostPayload:
    post: Post


@strawberry.type
class DeletePostPayload:
    deleted_post_id: strawberry.ID


@strawberry.type
class CommentPayload:
    comment: Comment


@strawberry.type
class DeleteCommentPayload:
    deleted_comment_id: strawberry.ID


@strawberry.type
class PostQueries:
    @strawberry.field(description="Posts with a hashtag, newest first.")
    async def posts_by_hashtag(
        self, info: Info, tag: str, first: int | None = None, after: str | None = None
    ) -> Connection[Post]:
        limit = page_size(first)

        async def read(before_id: int | None, count: int) -> list[int]:
            return await posts.hashtag_post_ids(
                info.context.sessions, tag, before_id=before_id, limit=count
            )

        ids = await read(decode_cursor(after), limit + 1)
        return await post_connection(info, ids, limit=limit, read_after=read)

    @strawberry.field(
        description="The viewer's saved posts, most recently saved first. Only the viewer "
        "sees this list.",
        permission_classes=[SignedIn],
    )
    async def saved_posts(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Post]:
        ctx = info.context
        limit = page_size(first)
        position_of: dict[int, str] = {}

        async def read(after_position: str | None, count: int) -> list[int]:
            entries = await saved.saved_post_ids(
                ctx.sessions, ctx.signed_in_id, after=after_position, limit=count
            )
            position_of.update((post_id, position) for position, post_id in entries)
            return [post_id for _, post_id in entries]

        return await post_connection(
            info,
            await read(decode_text_cursor(after), limit + 1),
            limit=limit,
            read_after=lambda post_id, count: read(position_of[post_id], count),
            cursors=lambda post_id: encode_text_cursor(position_of[post_id]),
        )


async def post_or_not_found(info: Info, post_id: int) -> Post:
    row = await info.context.loaders.visibility.post(post_id)
    if row is None:
        raise NotFound("No such post")
    return Post(row=row)


@strawberry.type
class PostMutations:
    @strawberry.mutation(permission_classes=[SignedIn])
    async def create_post(self, info: Info, input: CreatePostInput) -> PostPayload:
        ctx = info.context
        if len(input.media_ids) > posts.MAX_MEDIA_PER_POST:
            raise BadUserInput(
                f"A post carries at most {posts.MAX_MEDIA_PER_POST} photos or videos",
                field="mediaIds",
            )
        row = await posts.create_post(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            caption=input.caption,
            media_ids=[media_id_from(media_id) for media_id in input.media_ids],
        )
        return PostPayload(post=Post(row=row))

    @strawberry.mutation(permission_classes=[SignedIn])
    async def edit_post(self, info: Info, id: strawberry.ID, caption: str) -> PostPayload:
        ctx = info.context
        row = await posts.edit_caption(
            ctx.state, ctx.sessions, ctx.signed_in_id, post_id_from(id), caption=caption
        )
        return PostPayload(post=Post(row=row))

    @strawberry.mutation(permission_classes=[SignedIn])
    async def delete_post(self, info: Info, id: strawberry.ID) -> DeletePostPayload:
        ctx = info.context
        row = await posts.delete_post(ctx.state, ctx.sessions, ctx.signed_in_id, post_id_from(id))
        return DeletePostPayload(deleted_post_id=to_global_id("Post", row.id))

    @strawberry.mutation(
        description="Comment on a post; replyTo makes it a reply.", permission_classes=[SignedIn]
    )
    async def add_comment(
        self,
        info: Info,
        post_id: strawberry.ID,
        body: str,
        reply_to: strawberry.ID | None = None,
    ) -> CommentPayload:
        ctx = info.context
        row = await comments.add_comment(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            post_id_from(post_id),
            body=body,
            reply_to=comment_id_from(reply_to) if reply_to is not None else None,
        )
        return CommentPayload(comment=Comment(row=row))

    @strawberry.mutation(permission_classes=[SignedIn])
    async def delete_comment(self, info: Info, id: strawberry.ID) -> DeleteCommentPayload:
        ctx = info.context
        row = await comments.delete_comment(
            ctx.state, ctx.sessions, ctx.signed_in_id, comment_id_from(id)
        )
        return DeleteCommentPayload(deleted_comment_id=to_global_id("Comment", row.id))

    @strawberry.mutation(
        description="Like a post. Liking twice is the same as once.", permission_classes=[SignedIn]
    )
    async def like_post(self, info: Info, post_id: strawberry.ID) -> PostPayload:
        ctx = info.context
        target = post_id_from(post_id)
        await likes.set_post_like(ctx.state, ctx.sessions, ctx.signed_in_id, target, liked=True)
        return PostPayload(post=await post_or_not_found(info, target))

    @strawberry.mutation(permission_classes=[SignedIn])
    async def unlike_post(self, info: Info, post_id: strawberry.ID) -> PostPayload:
        ctx = info.context
        target = post_id_from(post_id)
        await likes.set_post_like(ctx.state, ctx.sessions, ctx.signed_in_id, target, liked=False)
        return PostPayload(post=await post_or_not_found(info, target))

    @strawberry.mutation(permission_classes=[SignedIn])
    async def like_comment(self, info: Info, comment_id: strawberry.ID) -> CommentPayload:
        ctx = info.context
        row = await likes.set_comment_like(
            ctx.state, ctx.sessions, ctx.signed_in_id, comment_id_from(comment_id), liked=True
        )
        return CommentPayload(comment=Comment(row=row))

    @strawberry.mutation(permission_classes=[SignedIn])
    async def unlike_comment(self, info: Info, comment_id: strawberry.ID) -> CommentPayload:
        ctx = info.context
        row = await likes.set_comment_like(
            ctx.state, ctx.sessions, ctx.signed_in_id, comment_id_from(comment_id), liked=False
        )
        return CommentPayload(comment=Comment(row=row))

    @strawberry.mutation(
        description="Add a post to your private saved list.", permission_classes=[SignedIn]
    )
    async def save_post(self, info: Info, post_id: strawberry.ID) -> PostPayload:
        ctx = info.context
        target = post_id_from(post_id)
        await saved.set_saved(ctx.state, ctx.sessions, ctx.signed_in_id, target, saved=True)
        return PostPayload(post=await post_or_not_found(info, target))

    @strawberry.mutation(
        description="Remove a post from your saved list.", permission_classes=[SignedIn]
    )
    async def unsave_post(self, info: Info, post_id: strawberry.ID) -> PostPayload:
        ctx = info.context
        target = post_id_from(post_id)
        await saved.set_saved(ctx.state, ctx.sessions, ctx.signed_in_id, target, saved=False)
        return PostPayload(post=await post_or_not_found(info, target))
