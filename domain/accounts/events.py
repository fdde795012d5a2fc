"""What happens in the social graph, for other features to react to (``domain/events.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.events import Topic


@dataclass(frozen=True)
class FollowChanged:
    follower_id: int
    followee_id: int


@dataclass(frozen=True)
class FollowRequested:
    requester_id: int
    target_id: int


# A follow became effective (a public account followed, a request approved).
FOLLOWED = Topic("account.followed", FollowChanged)
# A follow ended: unfollowed, follower removed, or a block in either direction.
UNFOLLOWED = Topic("account.unfollowed", FollowChanged)
FOLLOW_REQUESTED = Topic("account.follow_requested", FollowRequested)


@dataclass(frozen=True)
class SessionEnded:
    user_id: int
    session_hash: str


# A session was revoked (logged out): its open sockets stop receiving.
SESSION_ENDED = Topic("account.session_ended", SessionEnded)


@dataclass(frozen=True)
class AccountDeleted:
    user_id: int


# An account was deleted: what it stored goes with it.
ACCOUNT_DELETED = Topic("account.deleted", AccountDeleted)


@dataclass(frozen=True)
class AvatarReplaced:
    user_id: int
    media_id: int  # the avatar that was replaced or removed


AVATAR_REPLACED = Topic("account.avatar_replaced", AvatarReplaced)
