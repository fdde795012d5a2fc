"""A page of posts read ahead in two planned round trips.

Field by field, a page of 20 posts costs a Redis round trip per relation (rows, like
counts, comment counts, the viewer's likes, authors, follows, blocks), each behind its
own batch of futures; on a warm page that bookkeeping costs more CPU than the I/O. Here
the reads a page will make are planned together (``db.redis.read_together``):

1. the posts' rows, and what the reader asked for by post id (counters, the viewer's
   flags), plus the viewer's block set if it is not known yet;
2. the authors' rows and whether the viewer follows each, which the visibility rules
   need, the posts' media rows (a carousel's photos) when asked for, and, for a viewer
   with blocks who asked for comment counts, the blocked accounts' comments on each post
   (what ``visible_comment_count`` takes off; a viewer without blocks reads nothing more).

What it found comes back by the key each thing is read by (a post, an account, a media
row), for the reader to hold for the rest of its operation: the API primes its loaders
with it (``graphql_api/posts/loaders.py: prime_page``), so the visibility rules and the
fields answer from memory. Only hits come back: a miss (evicted, never cached) or a Redis
that cannot answer is left to the usual batch reads, which go to PostgreSQL and fill the
cache. Who may see what is still decided by ``Visibility``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from db.accounts.caches import AccountCaches
from db.accounts.records import UserRecord
from db.media.caches import MediaCaches
from db.media.records import MediaRecord
from db.posts.caches import PostCaches
from db.posts.records import PostRecord
from db.redis import PlannedRead, read_together, redis_available
from domain.state import AppState
from domain.visibility import visible_comment_count


@dataclass(frozen=True, slots=True)
class PostFields:
    """What a page's reader will ask of each post, beyond the row and its author."""

    like_count: bool = False
    comment_count: bool = False
    viewer_has_liked: bool = False
    viewer_has_saved: bool = False
    media: bool = False


@dataclass(slots=True)
class PostPageAhead:
    """What the planned read found, each by the key it is read by: only hits."""

    posts: dict[int, PostRecord | None]  # by post id
    users: dict[int, UserRecord | None] = field(default_factory=dict)  # the authors
    follows: dict[int, bool] = field(default_factory=dict)  # by author: followed?
    # The viewer's block set, as read here or given (None: unknown, or no viewer).
    blocked: set[int] | None = None
    # By post id: the counters and the viewer's flags asked for.
    like_counts: dict[int, int] = field(default_factory=dict)
    comment_counts: dict[int, int] = field(default_factory=dict)
    viewer_liked: dict[int, bool] = field(default_factory=dict)
    viewer_saved: dict[int, bool] = field(default_factory=dict)
    media: dict[int, MediaRecord | None] = field(default_factory=dict)  # by media id


async def read_ahead(
    state: AppState,
    *,
    viewer_id: int | None,
    post_ids: Sequence[int],
    fields: PostFields,
    blocked: set[int] | None = None,
) -> PostPageAhead | None:
    """Everything a page of ``post_ids`` will need that Redis has, in two round trips;
    None when Redis cannot answer. ``blocked``: the viewer's block set, if already read."""
    redis = state.runtime.redis
    ids = list(dict.fromkeys(post_ids))
    if not ids or not redis_available(redis):
        return None
    reads: list[PlannedRead[Any]] = [state.of(PostCaches).post_cache.plan_get(ids)]
    if fields.like_count:
        reads.append(state.of(PostCaches).post_likes.plan_get(ids))
    if fields.comment_count:
        reads.append(state.of(PostCaches).post_comments.plan_get(ids))
    if fields.viewer_has_liked and viewer_id is not None:
        reads.append(state.of(PostCaches).liked_posts.plan_get(viewer_id, ids))
    if fields.viewer_has_saved and viewer_id is not None:
        reads.append(state.of(PostCaches).saved_posts.plan_get(viewer_id, ids))
    read_blocks = viewer_id is not None and blocked is None
    if read_blocks and viewer_id is not None:
        reads.append(state.of(AccountCaches).block_sets.plan_members(viewer_id))
    answers = await read_together(redis, reads)
    if answers is None:
        return None
    answer = iter(answers)
    posts = next(answer)
    ahead = PostPageAhead(posts=posts)
    if fields.like_count:
        ahead.like_counts = next(answer)
    if fields.comment_count:
        ahead.comment_counts = next(answer)
    if fields.viewer_has_liked and viewer_id is not None:
        ahead.viewer_liked = next(answer)
    if fields.viewer_has_saved and viewer_id is not None:
        ahead.viewer_saved = next(answer)
    ahead.blocked = next(answer) if read_blocks else blocked
    known_blocks = ahead.blocked if viewer_id is not None else set()
    if known_blocks is None:
        # Whose comments to leave out is not known yet: the batch reads count them.
        ahead.comment_counts = {}

    authors = list(dict.fromkeys(row.author_id for row in posts.values() if row is not None))
    others = [author for author in authors if author != viewer_id]
    second: list[PlannedRead[Any]] = [state.of(AccountCaches).user_cache.plan_get(authors)]
    media_ids = (
        list(dict.fromkeys(m for row in posts.values() if row is not None for m in row.media_ids))
        if fields.media
        else []
    )
    second.append(state.of(MediaCaches).media_cache.plan_get(media_ids))
    follows_at = commenters_at = None
    if viewer_id is not None and others:
        follows_at = len(second)
        second.append(state.of(AccountCaches).following_sets.plan_contains(viewer_id, others))
    if known_blocks and ahead.comment_counts:
        # Only a viewer with blocks pays for this, and in a round trip made anyway.
        commenters_at = len(second)
        second.append(
            state.of(PostCaches).post_commenters.plan_get(
                list(ahead.comment_counts), sorted(known_blocks)
            )
        )
    answers = await read_together(redis, second)
    if answers is None:
        if commenters_at is not None:
            ahead.comment_counts = {}
        return ahead
    ahead.users = answers[0]
    ahead.media = answers[1]
    if follows_at is not None and answers[follows_at] is not None:
        ahead.follows = dict(zip(others, answers[follows_at], strict=True))
    elif viewer_id is None:
        ahead.follows = dict.fromkeys(others, False)
    if commenters_at is not None and known_blocks:
        by_post = answers[commenters_at]
        ahead.comment_counts = {
            post_id: visible_comment_count(
                total, blocked=known_blocks, comments_by_commenter=by_post[post_id]
            )
            for post_id, total in ahead.comment_counts.items()
            if post_id in by_post
        }
    return ahead
