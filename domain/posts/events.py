"""What happens to posts, for other features to react to (``domain/events.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import Topic


@dataclass(frozen=True)
class PostCreated:
    post_id: int
    author_id: int


@dataclass(frozen=True)
class PostDeleted:
    post_id: int
    author_id: int


@dataclass(frozen=True)
class CommentAdded:
    comment_id: int
    post_id: int
    author_id: int


@dataclass(frozen=True)
class PostLiked:
    post_id: int
    user_id: int


@dataclass(frozen=True)
class PostSaved:
    post_id: int
    user_id: int


POST_CREATED = Topic("post.created", PostCreated)
POST_DELETED = Topic("post.deleted", PostDeleted)
COMMENT_ADDED = Topic("comment.added", CommentAdded)
POST_LIKED = Topic("post.liked", PostLiked)
POST_SAVED = Topic("post.saved", PostSaved)
