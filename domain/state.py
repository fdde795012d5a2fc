"""Process-wide state every request, job and command shares: connections and caches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from db.accounts.cache import SessionCache, UsernameCache
from db.accounts.models import User
from db.accounts.records import UserRecord
from db.cache import RowCache
from db.counters import HotCounters
from db.explore.store import ExploreStore
from db.feed.activity import ActivityMarks
from db.feed.store import FeedStore
from db.flags import ViewerFlags
from db.id_lists import IdListCache
from db.media.models import Media
from db.media.records import MediaRecord
from db.posts.commenter_counts import PostCommenterCounts
from db.posts.models import Comment, Post
from db.posts.records import CommentRecord, PostRecord
from db.rate_limits import FailureBackoff, RateLimiter
from db.realtime import RealtimeBus
from db.relation_cache import RelationSetCache
from db.runtime import Runtime
from db.scored_sets import ScoredSet
from db.stories.models import Story
from db.stories.records import StoryRecord
from domain.accounts.passwords import PasswordHashPool
from domain.explore.models import ServedModel
from domain.media.delivery import MediaUrls, UrlSigner

# How many ids of a list are cached: enough for any first page a client asks for.
CACHED_LIST_LENGTH = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppState:
    runtime: Runtime
    user_cache: RowCache[User, UserRecord] = field(init=False)
    session_cache: SessionCache = field(init=False)
    usernames: UsernameCache = field(init=False)
    activity: ActivityMarks = field(init=False)
    following_sets: RelationSetCache = field(init=False)
    block_sets: RelationSetCache = field(init=False)
    post_cache: RowCache[Post, PostRecord] = field(init=False)
    comment_cache: RowCache[Comment, CommentRecord] = field(init=False)
    post_likes: HotCounters = field(init=False)
    post_comments: HotCounters = field(init=False)
    post_commenters: PostCommenterCounts = field(init=False)
    comment_likes: HotCounters = field(init=False)
    liked_posts: ViewerFlags = field(init=False)
    liked_comments: ViewerFlags = field(init=False)
    top_comments: IdListCache = field(init=False)
    comment_replies: IdListCache = field(init=False)
    author_posts: IdListCache = field(init=False)
    feeds: FeedStore = field(init=False)
    # Authors above the fan-out threshold, as one global set (key "large-accounts:0").
    large_accounts: RelationSetCache = field(init=False)
    # Request and log-in limits, shared by every process through Redis (db/rate_limits.py).
    rate_limiter: RateLimiter = field(init=False)
    login_failures: FailureBackoff = field(init=False)
    # Argon2 runs here, never on the event loop (domain/accounts/passwords.py).
    password_hashing: PasswordHashPool = field(init=False)
    media_cache: RowCache[Media, MediaRecord] = field(init=False)
    saved_posts: ViewerFlags = field(init=False)
    story_cache: RowCache[Story, StoryRecord] = field(init=False)
    # An author's live stories ("<id>" or "<id>:c" for close friends, scored by expiry in
    # ms) and a viewer's seen stories (scored likewise), rebuilt from rows when missing.
    story_index: ScoredSet = field(init=False)
    stories_seen: ScoredSet = field(init=False)
    close_friends: RelationSetCache = field(init=False)
    post_views: HotCounters = field(init=False)
    # Every recent reel, scored by creation time in ms, as one global set ("reels:0").
    reels_index: ScoredSet = field(init=False)
    media_urls: MediaUrls = field(init=False)
    # Live events to this process's sockets, and from any process (db/realtime.py).
    realtime: RealtimeBus = field(init=False)
    # Explore's derived data (candidates, trending, model versions) and the model in use.
    explore: ExploreStore = field(init=False)
    explore_model: ServedModel = field(init=False)
    # The time every rule reads (story expiry, signed URLs); tests replace it.
    clock: Callable[[], datetime] = field(default=utc_now)

    def __post_init__(self) -> None:
        redis = self.runtime.redis
        ttl = self.runtime.settings.cache_ttl_seconds
        # Credentials never leave PostgreSQL (UserRecord has none): log-in reads the row.
        self.user_cache = RowCache(redis, User, UserRecord, prefix="user", ttl_seconds=ttl)
        self.session_cache = SessionCache(redis, ttl_seconds=ttl)
        self.usernames = UsernameCache(redis, ttl_seconds=ttl)
        self.activity = ActivityMarks(redis)
        self.following_sets = RelationSetCache(redis, name="following", ttl_seconds=ttl)
        self.block_sets = RelationSetCache(redis, name="blockrel", ttl_seconds=ttl)
        self.post_cache = RowCache(redis, Post, PostRecord, prefix="post", ttl_seconds=ttl)
        self.comment_cache = RowCache(
            redis, Comment, CommentRecord, prefix="comment", ttl_seconds=ttl
        )
        self.post_likes = HotCounters(redis, name="post-likes", ttl_seconds=ttl)
        self.post_comments = HotCounters(redis, name="post-comments", ttl_seconds=ttl)
        self.post_commenters = PostCommenterCounts(redis, name="post-commenters", ttl_seconds=ttl)
        self.comment_likes = HotCounters(redis, name="comment-likes", ttl_seconds=ttl)
        self.liked_posts = ViewerFlags(redis, name="liked-posts", ttl_seconds=ttl)
        self.liked_comments = ViewerFlags(redis, name="liked-comments", ttl_seconds=ttl)
        self.top_comments = IdListCache(
            redis, name="top-comments", capacity=CACHED_LIST_LENGTH, ttl_seconds=ttl
        )
        self.comment_replies = IdListCache(
            redis, name="replies", capacity=CACHED_LIST_LENGTH, ttl_seconds=ttl
        )
        self.author_posts = IdListCache(
            redis, name="author-posts", capacity=CACHED_LIST_LENGTH, ttl_seconds=ttl
        )
        self.feeds = FeedStore(redis, capacity=self.runtime.settings.feed_capacity)
        self.large_accounts = RelationSetCache(redis, name="large-accounts", ttl_seconds=ttl)
        self.rate_limiter = RateLimiter(redis)
        self.login_failures = FailureBackoff(redis, name="login")
        self.media_cache = RowCache(redis, Media, MediaRecord, prefix="media", ttl_seconds=ttl)
        self.saved_posts = ViewerFlags(redis, name="saved-posts", ttl_seconds=ttl)
        self.story_cache = RowCache(redis, Story, StoryRecord, prefix="story", ttl_seconds=ttl)
        self.story_index = ScoredSet(redis, name="stories", ttl_seconds=ttl)
        self.stories_seen = ScoredSet(redis, name="story-seen", ttl_seconds=ttl)
        self.close_friends = RelationSetCache(redis, name="close-friends", ttl_seconds=ttl)
        self.post_views = HotCounters(redis, name="post-views", ttl_seconds=ttl)
        self.reels_index = ScoredSet(redis, name="reels", ttl_seconds=ttl)
        settings = self.runtime.settings
        self.realtime = RealtimeBus(redis, self.runtime.redis_url)
        self.explore = ExploreStore(redis, self.runtime.object_store)
        self.explore_model = ServedModel(self.explore)
        self.media_urls = MediaUrls(
            base_url=settings.cdn_base_url or f"http://{settings.host}:{settings.port}/media",
            signer=UrlSigner(self.runtime.secret_key, settings.media_url_ttl_seconds),
        )
        self.password_hashing = PasswordHashPool(
            threads=self.runtime.settings.password_hash_threads,
            queue=self.runtime.settings.password_hash_queue,
        )
