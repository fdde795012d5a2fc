"""Posts' Redis structures (rows, counters, a viewer's flags, first pages of id lists),
and the names of their keys."""

from __future__ import annotations

from redis.asyncio import Redis

from db.cache import RowCache
from db.counters import HotCounters
from db.flags import ViewerFlags
from db.id_lists import IdListCache
from db.posts.commenter_counts import PostCommenterCounts
from db.posts.models import Comment, Post
from db.posts.records import CommentRecord, PostRecord
from infra.settings import Settings

# How many ids of a list are cached: enough for any first page a client asks for.
CACHED_LIST_LENGTH = 100


class PostCaches:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        ttl = settings.cache_ttl_seconds
        self.post_cache = RowCache(redis, Post, PostRecord, prefix="post", ttl_seconds=ttl)
        self.comment_cache = RowCache(
            redis, Comment, CommentRecord, prefix="comment", ttl_seconds=ttl
        )
        self.post_likes = HotCounters(redis, name="post-likes", ttl_seconds=ttl)
        self.post_comments = HotCounters(redis, name="post-comments", ttl_seconds=ttl)
        self.post_commenters = PostCommenterCounts(redis, name="post-commenters", ttl_seconds=ttl)
        self.comment_likes = HotCounters(redis, name="comment-likes", ttl_seconds=ttl)
        self.post_views = HotCounters(redis, name="post-views", ttl_seconds=ttl)
        self.liked_posts = ViewerFlags(redis, name="liked-posts", ttl_seconds=ttl)
        self.liked_comments = ViewerFlags(redis, name="liked-comments", ttl_seconds=ttl)
        self.saved_posts = ViewerFlags(redis, name="saved-posts", ttl_seconds=ttl)
        self.top_comments = IdListCache(
            redis, name="top-comments", capacity=CACHED_LIST_LENGTH, ttl_seconds=ttl
        )
        self.comment_replies = IdListCache(
            redis, name="replies", capacity=CACHED_LIST_LENGTH, ttl_seconds=ttl
        )
        self.author_posts = IdListCache(
            redis, name="author-posts", capacity=CACHED_LIST_LENGTH, ttl_seconds=ttl
        )
