"""Post rules: captions, hashtags, mentions, comments, likes, and who may see what."""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Sequence

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from db.posts import repository as posts_repo
from db.posts.models import Comment, Post
from db.session import ShardSessions
from graphql_api.accounts import service as accounts_service
from graphql_api.errors import BadUserInput, Forbidden, NotFound
from graphql_api.state import CACHED_LIST_LENGTH, AppState
from workers.feed import enqueue_fan_out

log = logging.getLogger(__name__)

MAX_CAPTION = 2200
MAX_COMMENT = 2200
MAX_HASHTAGS = 30
HASHTAG_PATTERN = re.compile(r"(?<![\w&])#(\w{1,100})", re.UNICODE)
MENTION_PATTERN = re.compile(r"(?<![\w])@([A-Za-z0-9._]{1,30})")


def parse_hashtags(caption: str) -> list[str]:
    tags = [unicodedata.normalize("NFKC", tag).lower() for tag in HASHTAG_PATTERN.findall(caption)]
    return list(dict.fromkeys(tags))[:MAX_HASHTAGS]


def parse_mentions(caption: str) -> list[str]:
    names = [name.rstrip(".").lower() for name in MENTION_PATTERN.findall(caption)]
    return list(dict.fromkeys(name for name in names if name))


def _validate_caption(caption: str) -> str:
    if len(caption) > MAX_CAPTION:
        raise BadUserInput(f"Captions are at most {MAX_CAPTION} characters", field="caption")
    return caption


async def resolve_usernames(
    state: AppState, sessions: ShardSessions, usernames: Sequence[str]
) -> list[int]:
    """User ids for mentioned usernames, through the username cache; unknown names drop."""
    ids = await asyncio.gather(
        *(accounts_service.user_id_for_username(state, sessions, name) for name in usernames)
    )
    return [user_id for user_id in ids if user_id is not None]


async def _index_tags(
    sessions: ShardSessions, post_id: int, *, add: Sequence[str], remove: Sequence[str]
) -> None:
    """Keep the hashtag index (one row per tag, in the tag's shard) in step with a post."""
    shard_map = sessions.shard_map
    for tags, apply in ((add, posts_repo.index_hashtags), (remove, posts_repo.unindex_hashtags)):
        by_shard: dict[int, list[str]] = {}
        for tag in tags:
            by_shard.setdefault(shard_map.shard_for_key(f"tag:{tag}"), []).append(tag)
        for shard, shard_tags in by_shard.items():
            async with sessions.shard(shard) as session:
                await apply(session, post_id, shard_tags)


async def refresh_author_posts(state: AppState, sessions: ShardSessions, author_id: int) -> None:
    async with sessions.for_id(author_id) as session:
        ids = await posts_repo.author_post_ids(
            session, author_id, before_id=None, limit=CACHED_LIST_LENGTH
        )
    await state.author_posts.store(author_id, ids)


async def create_post(
    state: AppState, sessions: ShardSessions, viewer_id: int, *, caption: str
) -> Post:
    caption = _validate_caption(caption)
    hashtags = parse_hashtags(caption)
    mention_ids = await resolve_usernames(state, sessions, parse_mentions(caption))
    # A post lives in its author's shard, so its id (made by that shard's next_id) routes
    # every later read of it, its comments and its likes to the same place.
    async with sessions.for_id(viewer_id) as session:
        post = await posts_repo.insert_post(
            session,
            author_id=viewer_id,
            caption=caption,
            hashtags=hashtags,
            mention_ids=mention_ids,
        )
    # The post is committed: from here on nothing may turn it into an error for the client
    # (a retry would post twice). Fan-out goes first; the row's pending state backs it up.
    # Redis down: the job is queued once it answers again (or by the sweeper).
    await enqueue_fan_out(state.runtime.queue, post.id, redis=state.runtime.redis)
    try:
        await state.post_cache.store(post.id, post)
        await _index_tags(sessions, post.id, add=hashtags, remove=())
        await refresh_author_posts(state, sessions, viewer_id)
        await accounts_service.refresh_users(state, sessions, viewer_id)
    except (RedisError, SQLAlchemyError, OSError):
        log.exception("post %s is saved, but refreshing its caches and indexes failed", post.id)
    return post


async def _own_post(state: AppState, sessions: ShardSessions, viewer_id: int, post_id: int) -> Post:
    post = await visible_post(state, sessions, viewer_id, post_id)
    if post.author_id != viewer_id:
        raise Forbidden("Only the author can change this post")
    return post


async def edit_caption(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_id: int, *, caption: str
) -> Post:
    caption = _validate_caption(caption)
    old = await _own_post(state, sessions, viewer_id, post_id)
    hashtags = parse_hashtags(caption)
    mention_ids = await resolve_usernames(state, sessions, parse_mentions(caption))
    async with sessions.for_id(post_id) as session:
        post = await posts_repo.update_caption(
            session, post_id, caption=caption, hashtags=hashtags, mention_ids=mention_ids
        )
    if post is None:
        raise NotFound("No such post")
    await state.post_cache.store(post.id, post)
    old_tags = parse_hashtags(old.caption)
    await _index_tags(
        sessions,
        post_id,
        add=[t for t in hashtags if t not in old_tags],
        remove=[t for t in old_tags if t not in hashtags],
    )
    return post


async def delete_post(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_id: int
) -> Post:
    await _own_post(state, sessions, viewer_id, post_id)
    async with sessions.for_id(post_id) as session:
        post = await posts_repo.mark_post_deleted(session, post_id)
    if post is None:
        raise NotFound("No such post")
    await state.post_cache.store(post_id, None)
    await _index_tags(sessions, post_id, add=(), remove=parse_hashtags(post.caption))
    await refresh_author_posts(state, sessions, viewer_id)
    await accounts_service.refresh_users(state, sessions, viewer_id)
    return post


async def can_view_post(
    state: AppState, sessions: ShardSessions, viewer_id: int | None, post: Post
) -> bool:
    author = await accounts_service.load_user(state, sessions, post.author_id)
    if author is None:
        return False
    if viewer_id is not None and author.id in await accounts_service.block_set(
        state, sessions, viewer_id
    ):
        return False
    return await accounts_service.can_see_private_content(state, sessions, viewer_id, author)


async def visible_post(
    state: AppState, sessions: ShardSessions, viewer_id: int | None, post_id: int
) -> Post:
    rows = await state.post_cache.load([post_id], sessions=sessions, fetch=posts_repo.get_posts)
    post = rows[0]
    if post is None or not await can_view_post(state, sessions, viewer_id, post):
        raise NotFound("No such post")
    return post


# Comments -----------------------------------------------------------------------------


async def refresh_comment_lists(
    state: AppState, sessions: ShardSessions, *, post_id: int, parent_id: int | None
) -> None:
    async with sessions.for_id(post_id) as session:
        if parent_id is None:
            rows = await posts_repo.first_comment_ids(
                session, post_ids=[post_id], after_id=None, limit=CACHED_LIST_LENGTH
            )
            await state.top_comments.store(post_id, [comment for _, comment in rows])
        else:
            rows = await posts_repo.first_comment_ids(
                session, parent_ids=[parent_id], after_id=None, limit=CACHED_LIST_LENGTH
            )
            await state.comment_replies.store(parent_id, [comment for _, comment in rows])


async def add_comment(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    post_id: int,
    *,
    body: str,
    reply_to: int | None,
) -> Comment:
    body = body.strip()
    if not body:
        raise BadUserInput("A comment needs some text", field="body")
    if len(body) > MAX_COMMENT:
        raise BadUserInput(f"Comments are at most {MAX_COMMENT} characters", field="body")
    await visible_post(state, sessions, viewer_id, post_id)
    parent_id: int | None = None
    if reply_to is not None:
        parent = await _visible_comment(state, sessions, viewer_id, reply_to)
        if parent.post_id != post_id:
            raise NotFound("The comment you reply to does not exist on this post")
        # One level of replies: a reply to a reply joins its thread.
        parent_id = parent.parent_id or parent.id
    async with sessions.for_id(post_id) as session:
        comment = await posts_repo.insert_comment(
            session, post_id=post_id, author_id=viewer_id, parent_id=parent_id, body=body
        )
    await state.comment_cache.store(comment.id, comment)
    await state.post_comments.adjust(post_id, 1)
    await refresh_comment_lists(state, sessions, post_id=post_id, parent_id=parent_id)
    return comment


async def _visible_comment(
    state: AppState, sessions: ShardSessions, viewer_id: int, comment_id: int
) -> Comment:
    """A comment the viewer may see: on a visible post, by a live author, no block."""
    comment = await load_comment(state, sessions, comment_id)
    if comment is None:
        raise NotFound("No such comment")
    await visible_post(state, sessions, viewer_id, comment.post_id)
    author = await accounts_service.load_user(state, sessions, comment.author_id)
    if author is None or author.id in await accounts_service.block_set(state, sessions, viewer_id):
        raise NotFound("No such comment")
    return comment


async def load_comment(state: AppState, sessions: ShardSessions, comment_id: int) -> Comment | None:
    rows = await state.comment_cache.load(
        [comment_id], sessions=sessions, fetch=posts_repo.get_comments
    )
    return rows[0]


async def delete_comment(
    state: AppState, sessions: ShardSessions, viewer_id: int, comment_id: int
) -> Comment:
    comment = await load_comment(state, sessions, comment_id)
    if comment is None:
        raise NotFound("No such comment")
    post = await visible_post(state, sessions, viewer_id, comment.post_id)
    if viewer_id not in (comment.author_id, post.author_id):
        raise Forbidden("Only the comment's author or the post's author can delete it")
    async with sessions.for_id(comment_id) as session:
        deleted = await posts_repo.mark_comment_deleted(session, comment_id)
    if deleted is None:
        raise NotFound("No such comment")
    await state.comment_cache.store(comment_id, None)
    await state.post_comments.adjust(comment.post_id, -1)
    await refresh_comment_lists(
        state, sessions, post_id=comment.post_id, parent_id=comment.parent_id
    )
    return comment


# Likes --------------------------------------------------------------------------------


async def set_post_like(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_id: int, *, liked: bool
) -> None:
    await visible_post(state, sessions, viewer_id, post_id)
    async with sessions.for_id(post_id) as session:
        if liked:
            changed = await posts_repo.add_post_like(session, post_id=post_id, user_id=viewer_id)
        else:
            changed = await posts_repo.remove_post_like(session, post_id=post_id, user_id=viewer_id)
    # Liking twice changes no row, so it changes no counter either.
    if changed:
        await state.post_likes.adjust(post_id, 1 if liked else -1)
    await state.liked_posts.store(viewer_id, post_id, liked)


async def set_comment_like(
    state: AppState, sessions: ShardSessions, viewer_id: int, comment_id: int, *, liked: bool
) -> Comment:
    comment = await _visible_comment(state, sessions, viewer_id, comment_id)
    async with sessions.for_id(comment_id) as session:
        if liked:
            changed = await posts_repo.add_comment_like(
                session, comment_id=comment_id, user_id=viewer_id
            )
        else:
            changed = await posts_repo.remove_comment_like(
                session, comment_id=comment_id, user_id=viewer_id
            )
    if changed:
        await state.comment_likes.adjust(comment_id, 1 if liked else -1)
    await state.liked_comments.store(viewer_id, comment_id, liked)
    return comment
