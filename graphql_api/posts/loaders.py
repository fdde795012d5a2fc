"""Per-request DataLoaders for posts, comments, counters and the viewer's likes.

Every loader answers a whole page with one Redis round trip and, for what Redis lacks,
one SQL statement per shard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from db.flags import ViewerFlags
from db.id_lists import IdListCache
from db.posts import repository as posts_repo
from db.posts.models import Comment, Post
from db.redis import read_epoch
from db.session import ShardSessions
from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.state import AppState

# (owner id, how many): a post's first top-level comments, or a comment's first replies.
ListKey = tuple[int, int]


class PostLoaders:
    def __init__(
        self,
        state: AppState,
        sessions: ShardSessions,
        viewer_id: int | None,
        accounts: AccountLoaders,
    ) -> None:
        self._state = state
        self._sessions = sessions
        self._viewer_id = viewer_id
        self._accounts = accounts
        self.post: DataLoader[int, Post | None] = DataLoader(load_fn=self._load_posts)
        self.comment: DataLoader[int, Comment | None] = DataLoader(load_fn=self._load_comments)
        self.like_count: DataLoader[int, int] = DataLoader(load_fn=self._load_like_counts)
        self.comment_count: DataLoader[int, int] = DataLoader(load_fn=self._load_comment_counts)
        self.comment_like_count: DataLoader[int, int] = DataLoader(
            load_fn=self._load_comment_like_counts
        )
        self.viewer_liked: DataLoader[int, bool] = DataLoader(load_fn=self._load_viewer_liked)
        self.viewer_liked_comment: DataLoader[int, bool] = DataLoader(
            load_fn=self._load_viewer_liked_comments
        )
        self.first_comments: DataLoader[ListKey, list[int]] = DataLoader(
            load_fn=self._load_first_comments
        )
        self.first_replies: DataLoader[ListKey, list[int]] = DataLoader(
            load_fn=self._load_first_replies
        )
        self.mentions: DataLoader[int, list[int]] = DataLoader(load_fn=self._load_mentions)

    async def _load_posts(self, ids: Sequence[int]) -> list[Post | None]:
        return await self._state.post_cache.load(
            ids, sessions=self._sessions, fetch=posts_repo.get_posts
        )

    async def _load_comments(self, ids: Sequence[int]) -> list[Comment | None]:
        return await self._state.comment_cache.load(
            ids, sessions=self._sessions, fetch=posts_repo.get_comments
        )

    async def _load_like_counts(self, ids: Sequence[int]) -> list[int]:
        return await self._state.post_likes.get_many(
            ids, sessions=self._sessions, count=posts_repo.post_like_counts
        )

    async def _load_comment_counts(self, ids: Sequence[int]) -> list[int]:
        return await self._state.post_comments.get_many(
            ids, sessions=self._sessions, count=posts_repo.comment_counts
        )

    async def _load_comment_like_counts(self, ids: Sequence[int]) -> list[int]:
        return await self._state.comment_likes.get_many(
            ids, sessions=self._sessions, count=posts_repo.comment_like_counts
        )

    async def _viewer_flags(
        self,
        ids: Sequence[int],
        flags: ViewerFlags,
        query: Callable[[AsyncSession, int, Sequence[int]], Awaitable[set[int]]],
    ) -> list[bool]:
        viewer_id = self._viewer_id
        if viewer_id is None:
            return [False] * len(ids)
        epoch = read_epoch(self._state.runtime.redis)
        known = await flags.get_many(viewer_id, ids)
        misses = [object_id for object_id in dict.fromkeys(ids) if object_id not in known]
        if misses:

            async def per_shard(session: AsyncSession, shard_ids: list[int]) -> list[int]:
                return list(await query(session, viewer_id, shard_ids))

            liked = set(await self._sessions.scatter_ids(misses, per_shard))
            loaded = {object_id: object_id in liked for object_id in misses}
            await flags.fill(viewer_id, loaded, epoch=epoch)
            known.update(loaded)
        return [known.get(object_id, False) for object_id in ids]

    async def _load_viewer_liked(self, ids: Sequence[int]) -> list[bool]:
        return await self._viewer_flags(ids, self._state.liked_posts, posts_repo.liked_posts)

    async def _load_viewer_liked_comments(self, ids: Sequence[int]) -> list[bool]:
        return await self._viewer_flags(ids, self._state.liked_comments, posts_repo.liked_comments)

    async def _first_ids(
        self, keys: Sequence[ListKey], cache: IdListCache, *, replies: bool
    ) -> list[list[int]]:
        owners = list(dict.fromkeys(owner for owner, _ in keys))
        epoch = read_epoch(self._state.runtime.redis)
        cached = await cache.get_many(owners)
        misses = [owner for owner in owners if owner not in cached]
        if misses:

            async def per_shard(
                session: AsyncSession, shard_owners: list[int]
            ) -> list[tuple[int, int]]:
                if replies:
                    return await posts_repo.first_comment_ids(
                        session, parent_ids=shard_owners, after_id=None, limit=cache.capacity
                    )
                return await posts_repo.first_comment_ids(
                    session, post_ids=shard_owners, after_id=None, limit=cache.capacity
                )

            loaded: dict[int, list[int]] = {owner: [] for owner in misses}
            for owner, comment_id in await self._sessions.scatter_ids(misses, per_shard):
                loaded[owner].append(comment_id)
            await cache.fill(loaded, epoch=epoch)
            cached.update(loaded)
        return [cached[owner][:count] for owner, count in keys]

    async def _load_first_comments(self, keys: Sequence[ListKey]) -> list[list[int]]:
        return await self._first_ids(keys, self._state.top_comments, replies=False)

    async def _load_first_replies(self, keys: Sequence[ListKey]) -> list[list[int]]:
        return await self._first_ids(keys, self._state.comment_replies, replies=True)

    async def _load_mentions(self, post_ids: Sequence[int]) -> list[list[int]]:
        rows = await self._sessions.scatter_ids(post_ids, posts_repo.mentions_of)
        mentioned: dict[int, list[int]] = {post_id: [] for post_id in post_ids}
        for post_id, user_id in rows:
            mentioned[post_id].append(user_id)
        return [mentioned[post_id] for post_id in post_ids]

    async def visible_posts(self, ids: Sequence[int]) -> list[Post | None]:
        """Posts the viewer may see: live, by a live author, no block, not private to them."""
        posts = await self.post.load_many(ids)
        author_ids = [post.author_id for post in posts if post is not None]
        authors = await self._accounts.visible_users(author_ids)
        visible_authors = {author.id: author for author in authors if author is not None}
        private = [
            author.id
            for author in visible_authors.values()
            if author.is_private and author.id != self._viewer_id
        ]
        follows = await self._accounts.viewer_follows.load_many(private) if private else []
        hidden = {author_id for author_id, ok in zip(private, follows, strict=True) if not ok}
        return [
            post
            if post is not None
            and post.author_id in visible_authors
            and post.author_id not in hidden
            else None
            for post in posts
        ]

    async def visible_post(self, post_id: int) -> Post | None:
        (post,) = await self.visible_posts([post_id])
        return post

    async def visible_comments(self, ids: Sequence[int]) -> list[Comment | None]:
        comments = await self.comment.load_many(ids)
        authors = await self._accounts.visible_users(
            [comment.author_id for comment in comments if comment is not None]
        )
        live_authors = {author.id for author in authors if author is not None}
        return [
            comment if comment is not None and comment.author_id in live_authors else None
            for comment in comments
        ]
