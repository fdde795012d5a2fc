"""Posts: creating, editing and deleting them, and the lists they appear in (an author's
grid, a hashtag's page).

A post lives in its author's shard, so its id (made by that shard's ``next_id``) routes
every later read of it, its comments and its likes to the same place. The hashtag index
lives in each tag's own shard.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from db.accounts.records import UserRecord
from db.posts import repository as posts_repo
from db.posts.caches import CACHED_LIST_LENGTH, PostCaches
from db.posts.records import PostRecord
from db.redis import read_epoch
from db.session import ShardSessions
from domain import events
from domain.accounts.relations import refresh_users, user_ids_for_usernames
from domain.errors import BadUserInput, Forbidden, MediaNotReady, NotFound
from domain.media.lifecycle import publish_media, published, ready_kinds
from domain.posts.events import POST_CREATED, POST_DELETED, PostCreated, PostDeleted
from domain.posts.text import parse_hashtags, parse_mentions, validate_caption
from domain.state import AppState
from domain.visibility import Visibility, direct

log = logging.getLogger(__name__)


async def _index_tags(
    sessions: ShardSessions, post_id: int, *, add: Sequence[str], remove: Sequence[str]
) -> None:
    """Keep the hashtag index (one row per tag, in the tag's shard) in step with a post."""
    shard_map = sessions.shard_map
    for tags, apply in ((add, posts_repo.index_hashtags), (remove, posts_repo.unindex_hashtags)):
        by_shard: dict[int, list[str]] = {}
        for tag in tags:
            by_shard.setdefault(shard_map.shard_for_hashtag(tag), []).append(tag)
        for shard, shard_tags in by_shard.items():
            async with sessions.shard(shard) as session:
                await apply(session, post_id, shard_tags)


async def refresh_author_posts(state: AppState, sessions: ShardSessions, author_id: int) -> None:
    async with sessions.for_id(author_id) as session:
        ids = await posts_repo.author_post_ids(
            session, author_id, before_id=None, limit=CACHED_LIST_LENGTH
        )
    await state.of(PostCaches).author_posts.store(author_id, ids)


MAX_MEDIA_PER_POST = 10


def _check_media_ids(media_ids: Sequence[int]) -> list[int]:
    if len(media_ids) > MAX_MEDIA_PER_POST:
        raise BadUserInput(
            f"A post carries at most {MAX_MEDIA_PER_POST} photos or videos", field="mediaIds"
        )
    if len(set(media_ids)) != len(media_ids):
        raise BadUserInput("The same media appears twice", field="mediaIds")
    return list(media_ids)


async def create_post(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    *,
    caption: str,
    media_ids: Sequence[int] = (),
) -> PostRecord:
    """A post of up to ten processed photos and videos (a carousel, in order), or of a
    caption alone. A post of a single video is a reel."""
    caption = validate_caption(caption)
    media_ids = _check_media_ids(media_ids)
    hashtags = parse_hashtags(caption)
    mention_ids = await user_ids_for_usernames(state, sessions, parse_mentions(caption))
    async with sessions.for_id(viewer_id) as session:
        # Media lives in its owner's shard, which is the post's: both commit together.
        kinds = await ready_kinds(session, media_ids, owner_id=viewer_id)
        post = await posts_repo.insert_post(
            session,
            author_id=viewer_id,
            caption=caption,
            hashtags=hashtags,
            mention_ids=mention_ids,
            media_ids=media_ids,
            is_reel=len(media_ids) == 1 and kinds.get(media_ids[0]) == "video",
        )
        attached = await publish_media(
            session, media_ids=media_ids, owner_id=viewer_id, publisher_id=post.id
        )
        if len(attached) != len(media_ids):
            missing = sorted(set(media_ids) - {media.id for media in attached})
            raise MediaNotReady(
                "Only your own processed media that is not published yet can be posted",
                mediaIds=[str(media_id) for media_id in missing],
            )
        owed = await events.emit(
            session, POST_CREATED, PostCreated(post_id=post.id, author_id=viewer_id)
        )
    # The post is committed: from here on nothing may turn it into an error for the client
    # (a retry would post twice). Its event goes first; the outbox row backs it up.
    await events.relay(state, sessions, owed)
    try:
        await published(state, media_ids)
        await state.of(PostCaches).post_cache.store(post.id, post)
        await _index_tags(sessions, post.id, add=hashtags, remove=())
        await refresh_author_posts(state, sessions, viewer_id)
        await refresh_users(state, sessions, viewer_id)
    except (RedisError, SQLAlchemyError, OSError):
        log.exception("post %s is saved, but refreshing its caches and indexes failed", post.id)
    return state.of(PostCaches).post_cache.record_of(post)


async def _own_post(visibility: Visibility, post_id: int) -> PostRecord:
    post = await visibility.require_post(post_id)
    if post.author_id != visibility.viewer_id:
        raise Forbidden("Only the author can change this post")
    return post


async def edit_caption(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_id: int, *, caption: str
) -> PostRecord:
    caption = validate_caption(caption)
    old = await _own_post(direct(state, sessions, viewer_id), post_id)
    hashtags = parse_hashtags(caption)
    mention_ids = await user_ids_for_usernames(state, sessions, parse_mentions(caption))
    async with sessions.for_id(post_id) as session:
        post = await posts_repo.update_caption(
            session, post_id, caption=caption, hashtags=hashtags, mention_ids=mention_ids
        )
    if post is None:
        raise NotFound("No such post")
    await state.of(PostCaches).post_cache.store(post.id, post)
    old_tags = parse_hashtags(old.caption)
    await _index_tags(
        sessions,
        post_id,
        add=[t for t in hashtags if t not in old_tags],
        remove=[t for t in old_tags if t not in hashtags],
    )
    return state.of(PostCaches).post_cache.record_of(post)


async def delete_post(
    state: AppState, sessions: ShardSessions, viewer_id: int, post_id: int
) -> PostRecord:
    await _own_post(direct(state, sessions, viewer_id), post_id)
    async with sessions.for_id(post_id) as session:
        post = await posts_repo.mark_post_deleted(session, post_id)
        if post is None:
            raise NotFound("No such post")
        owed = await events.emit(
            session, POST_DELETED, PostDeleted(post_id=post_id, author_id=viewer_id)
        )
    await events.relay(state, sessions, owed)
    await state.of(PostCaches).post_cache.store(post_id, None)
    await _index_tags(sessions, post_id, add=(), remove=parse_hashtags(post.caption))
    await refresh_author_posts(state, sessions, viewer_id)
    await refresh_users(state, sessions, viewer_id)
    return state.of(PostCaches).post_cache.record_of(post)


# Lists of posts -----------------------------------------------------------------------
# Each returns post ids, newest first, ``limit`` at most; the caller passes them through
# Visibility.


async def author_post_ids(
    state: AppState,
    sessions: ShardSessions,
    visibility: Visibility,
    author: UserRecord,
    *,
    before_id: int | None,
    limit: int,
) -> list[int]:
    """The author's grid; the first page comes from the cached list of their newest."""
    await visibility.require_content_access(author)
    epoch = read_epoch(state.runtime.redis)
    if before_id is None and limit <= CACHED_LIST_LENGTH:
        cached = await state.of(PostCaches).author_posts.get_many([author.id])
        if author.id in cached:
            return cached[author.id][:limit]
    async with sessions.for_id(author.id) as session:
        fetched = await posts_repo.author_post_ids(
            session,
            author.id,
            before_id=before_id,
            limit=max(CACHED_LIST_LENGTH, limit) if before_id is None else limit,
        )
    if before_id is None:
        await state.of(PostCaches).author_posts.fill({author.id: fetched}, epoch=epoch)
    return fetched[:limit]


async def hashtag_post_ids(
    sessions: ShardSessions, tag: str, *, before_id: int | None, limit: int
) -> list[int]:
    normalized = parse_hashtags(f"#{tag.lstrip('#')}")
    if not normalized:
        raise BadUserInput(f"{tag!r} is not a hashtag", field="tag")
    async with sessions.shard(sessions.shard_map.shard_for_hashtag(normalized[0])) as session:
        return await posts_repo.hashtag_post_ids(
            session, normalized[0], before_id=before_id, limit=limit
        )


async def mentioned_user_ids(sessions: ShardSessions, post_ids: Sequence[int]) -> list[list[int]]:
    """For each post, the ids of the users its caption mentions (whoever may see them)."""
    rows = await sessions.scatter_ids(post_ids, posts_repo.mentions_of)
    mentioned: dict[int, list[int]] = {post_id: [] for post_id in post_ids}
    for post_id, user_id in rows:
        mentioned[post_id].append(user_id)
    return [mentioned[post_id] for post_id in post_ids]
