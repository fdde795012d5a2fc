"""Per-operation loaders for posts, comments, counters and the viewer's likes; they answer
the visibility policy's questions about posts and comments (``PostFacts``).

Every loader answers a whole page with one Redis round trip and, for what Redis lacks,
one SQL statement per shard (the domain's batch reads do that). A page's planned read
primes them first (``prime_page``), so that a warm page reads nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

from db.posts.records import CommentRecord, PostRecord
from domain.posts import comments, likes, posts, reads, saved
from domain.posts.comments import ThreadKey
from domain.posts.pages import PostPageAhead
from domain.reels import reels
from domain.visibility import PostFacts
from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.context import Loaders
from graphql_api.loader import Loader
from graphql_api.media.loaders import MediaLoaders


class PostLoaders(PostFacts):
    def __init__(self, loaders: Loaders) -> None:
        self._loaders = loaders
        self._state = loaders.state
        self._sessions = loaders.sessions
        self._viewer_id = loaders.viewer_id
        self.post: Loader[int, PostRecord | None] = Loader(self._load_posts)
        self.comment: Loader[int, CommentRecord | None] = Loader(self._load_comments)
        self.like_count: Loader[int, int] = Loader(self._load_like_counts)
        # As the viewer sees them: less the comments of accounts blocked either way.
        self.comment_count: Loader[int, int] = Loader(self._load_comment_counts)
        self.comment_like_count: Loader[int, int] = Loader(self._load_comment_like_counts)
        self.viewer_liked: Loader[int, bool] = Loader(self._load_viewer_liked)
        self.viewer_liked_comment: Loader[int, bool] = Loader(self._load_viewer_liked_comments)
        self.first_comments: Loader[ThreadKey, list[int]] = Loader(self._load_first_comments)
        self.first_replies: Loader[ThreadKey, list[int]] = Loader(self._load_first_replies)
        self.mentions: Loader[int, list[int]] = Loader(self._load_mentions)
        self.view_count: Loader[int, int] = Loader(self._load_view_counts)
        self.viewer_saved: Loader[int, bool] = Loader(self._load_viewer_saved)

    async def _load_posts(self, ids: Sequence[int]) -> list[PostRecord | None]:
        return await reads.load_posts(self._state, self._sessions, ids)

    async def _load_comments(self, ids: Sequence[int]) -> list[CommentRecord | None]:
        return await reads.load_comments(self._state, self._sessions, ids)

    async def _load_like_counts(self, ids: Sequence[int]) -> list[int]:
        return await likes.like_counts(self._state, self._sessions, ids)

    async def _load_comment_counts(self, ids: Sequence[int]) -> list[int]:
        blocked = await self._loaders.of(AccountLoaders).blocked()
        return await comments.visible_comment_counts(
            self._state, self._sessions, ids, blocked=blocked
        )

    async def _load_comment_like_counts(self, ids: Sequence[int]) -> list[int]:
        return await likes.comment_like_counts(self._state, self._sessions, ids)

    async def _load_viewer_liked(self, ids: Sequence[int]) -> list[bool]:
        if self._viewer_id is None:
            return [False] * len(ids)
        return await likes.viewer_liked_posts(self._state, self._sessions, self._viewer_id, ids)

    async def _load_viewer_liked_comments(self, ids: Sequence[int]) -> list[bool]:
        if self._viewer_id is None:
            return [False] * len(ids)
        return await likes.viewer_liked_comments(self._state, self._sessions, self._viewer_id, ids)

    async def _load_first_comments(self, keys: Sequence[ThreadKey]) -> list[list[int]]:
        return await comments.first_comment_ids(self._state, self._sessions, keys, replies=False)

    async def _load_first_replies(self, keys: Sequence[ThreadKey]) -> list[list[int]]:
        return await comments.first_comment_ids(self._state, self._sessions, keys, replies=True)

    async def _load_mentions(self, post_ids: Sequence[int]) -> list[list[int]]:
        return await posts.mentioned_user_ids(self._sessions, post_ids)

    async def _load_view_counts(self, post_ids: Sequence[int]) -> list[int]:
        return await reels.view_counts(self._state, self._sessions, post_ids)

    async def _load_viewer_saved(self, post_ids: Sequence[int]) -> list[bool]:
        if self._viewer_id is None:
            return [False] * len(post_ids)
        return await saved.viewer_saved(self._state, self._sessions, self._viewer_id, post_ids)

    # The policy's facts (``PostFacts``) -------------------------------------------------

    async def posts(self, ids: Sequence[int]) -> list[PostRecord | None]:
        return await self.post.load_many(ids)

    async def comments(self, ids: Sequence[int]) -> list[CommentRecord | None]:
        return await self.comment.load_many(ids)


def prime_page(loaders: Loaders, ahead: PostPageAhead) -> None:
    """What a page's planned read found (``domain/posts/pages.py``), held by the loaders
    each part is read through: the policy and the fields then answer from memory."""
    post_loaders = loaders.of(PostLoaders)
    post_loaders.post.prime_many(ahead.posts)
    post_loaders.like_count.prime_many(ahead.like_counts)
    post_loaders.comment_count.prime_many(ahead.comment_counts)
    post_loaders.viewer_liked.prime_many(ahead.viewer_liked)
    post_loaders.viewer_saved.prime_many(ahead.viewer_saved)
    accounts = loaders.of(AccountLoaders)
    accounts.user.prime_many(ahead.users)
    accounts.viewer_follows.prime_many(ahead.follows)
    if loaders.viewer_id is not None and ahead.blocked is not None:
        accounts.block_set.prime(loaders.viewer_id, ahead.blocked)
    if ahead.media:
        loaders.of(MediaLoaders).media.prime_many(ahead.media)
