"""Per-operation DataLoaders for posts, comments, counters and the viewer's likes.

Every loader answers a whole page with one Redis round trip and, for what Redis lacks,
one SQL statement per shard (the domain's batch reads do that).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from strawberry.dataloader import DataLoader

from db.posts.records import CommentRecord, PostRecord
from db.session import ShardSessions
from domain.posts import comments, likes, posts, reads, saved
from domain.posts.comments import ThreadKey
from domain.reels import reels
from domain.state import AppState


class PostLoaders:
    def __init__(
        self,
        state: AppState,
        sessions: ShardSessions,
        viewer_id: int | None,
        *,
        block_set: Callable[[], Awaitable[set[int]]],
    ) -> None:
        self._state = state
        self._sessions = sessions
        self._viewer_id = viewer_id
        # The viewer's block set, shared with the operation's other loaders.
        self._block_set = block_set
        self.post: DataLoader[int, PostRecord | None] = DataLoader(load_fn=self._load_posts)
        self.comment: DataLoader[int, CommentRecord | None] = DataLoader(
            load_fn=self._load_comments
        )
        self.like_count: DataLoader[int, int] = DataLoader(load_fn=self._load_like_counts)
        self.comment_count: DataLoader[int, int] = DataLoader(load_fn=self._load_comment_counts)
        self.comment_like_count: DataLoader[int, int] = DataLoader(
            load_fn=self._load_comment_like_counts
        )
        self.viewer_liked: DataLoader[int, bool] = DataLoader(load_fn=self._load_viewer_liked)
        self.viewer_liked_comment: DataLoader[int, bool] = DataLoader(
            load_fn=self._load_viewer_liked_comments
        )
        self.first_comments: DataLoader[ThreadKey, list[int]] = DataLoader(
            load_fn=self._load_first_comments
        )
        self.first_replies: DataLoader[ThreadKey, list[int]] = DataLoader(
            load_fn=self._load_first_replies
        )
        self.mentions: DataLoader[int, list[int]] = DataLoader(load_fn=self._load_mentions)
        self.view_count: DataLoader[int, int] = DataLoader(load_fn=self._load_view_counts)
        self.viewer_saved: DataLoader[int, bool] = DataLoader(load_fn=self._load_viewer_saved)

    async def _load_posts(self, ids: Sequence[int]) -> list[PostRecord | None]:
        return await reads.load_posts(self._state, self._sessions, ids)

    async def _load_comments(self, ids: Sequence[int]) -> list[CommentRecord | None]:
        return await reads.load_comments(self._state, self._sessions, ids)

    async def _load_like_counts(self, ids: Sequence[int]) -> list[int]:
        return await likes.like_counts(self._state, self._sessions, ids)

    async def _load_comment_counts(self, ids: Sequence[int]) -> list[int]:
        """As the viewer sees them: less the comments of accounts blocked either way."""
        return await comments.visible_comment_counts(
            self._state, self._sessions, ids, blocked=await self._block_set()
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
