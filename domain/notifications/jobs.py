"""What raises a notification: other features' events, handled right after their commit
(inline) with the queue as the fallback. Registered here, found by
``domain.jobs.load_features``."""

from __future__ import annotations

from db.session import ShardSessions
from domain.accounts.events import FOLLOW_REQUESTED, FOLLOWED, FollowChanged, FollowRequested
from domain.accounts.relations import user_id_for_username
from domain.events import handles
from domain.jobs import periodic
from domain.messaging.events import MESSAGE_SENT, MessageSent
from domain.notifications.notifications import (
    PURGE_INTERVAL,
    NotificationKind,
    Target,
    forget_old_events,
    notify,
)
from domain.posts.events import (
    COMMENT_ADDED,
    POST_CREATED,
    POST_LIKED,
    CommentAdded,
    PostCreated,
    PostLiked,
)
from domain.posts.text import parse_mentions
from domain.state import AppState
from domain.visibility import direct

NOTIFICATIONS_QUEUE = "notifications"
# Mentions notified per post or comment: a caption naming hundreds is spam.
MAX_MENTIONS = 20


@handles(POST_LIKED, name="notifications.like", queue=NOTIFICATIONS_QUEUE, inline=True)
async def post_liked(state: AppState, sessions: ShardSessions, event: PostLiked) -> None:
    post = await direct(state, sessions, event.user_id).post(event.post_id)
    if post is None:
        return
    await notify(
        state,
        sessions,
        recipient_id=post.author_id,
        actor_id=event.user_id,
        kind=NotificationKind.LIKE,
        group_key=f"like:{post.id}",
        event_key=f"like:{post.id}:{event.user_id}",
        target=Target(post_id=post.id),
    )


async def _mentioned(
    state: AppState,
    sessions: ShardSessions,
    *,
    text: str,
    actor_id: int,
    post_id: int,
    comment_id: int | None,
) -> None:
    source = f"comment:{comment_id}" if comment_id is not None else f"post:{post_id}"
    for username in list(dict.fromkeys(name.lower() for name in parse_mentions(text)))[
        :MAX_MENTIONS
    ]:
        user_id = await user_id_for_username(state, sessions, username)
        if user_id is None:
            continue
        # Only someone who may see the post hears of it.
        if await direct(state, sessions, user_id).post(post_id) is None:
            continue
        await notify(
            state,
            sessions,
            recipient_id=user_id,
            actor_id=actor_id,
            kind=NotificationKind.MENTION,
            group_key=f"mention:{source}",
            event_key=f"mention:{source}",
            target=Target(post_id=post_id, comment_id=comment_id),
        )


@handles(COMMENT_ADDED, name="notifications.comment", queue=NOTIFICATIONS_QUEUE, inline=True)
async def comment_added(state: AppState, sessions: ShardSessions, event: CommentAdded) -> None:
    visibility = direct(state, sessions, event.author_id)
    post = await visibility.post(event.post_id)
    comment = await visibility.comment(event.comment_id)
    if post is None or comment is None:
        return
    await notify(
        state,
        sessions,
        recipient_id=post.author_id,
        actor_id=event.author_id,
        kind=NotificationKind.COMMENT,
        group_key=f"comment:{post.id}",
        event_key=f"comment:{comment.id}",
        target=Target(post_id=post.id, comment_id=comment.id),
    )
    await _mentioned(
        state,
        sessions,
        text=comment.body,
        actor_id=event.author_id,
        post_id=post.id,
        comment_id=comment.id,
    )


@handles(POST_CREATED, name="notifications.mentions", queue=NOTIFICATIONS_QUEUE, inline=True)
async def post_created(state: AppState, sessions: ShardSessions, event: PostCreated) -> None:
    post = await direct(state, sessions, event.author_id).post(event.post_id)
    if post is None or "@" not in post.caption:
        return
    await _mentioned(
        state,
        sessions,
        text=post.caption,
        actor_id=post.author_id,
        post_id=post.id,
        comment_id=None,
    )


@handles(FOLLOWED, name="notifications.follow", queue=NOTIFICATIONS_QUEUE, inline=True)
async def followed(state: AppState, sessions: ShardSessions, event: FollowChanged) -> None:
    await notify(
        state,
        sessions,
        recipient_id=event.followee_id,
        actor_id=event.follower_id,
        kind=NotificationKind.FOLLOW,
        group_key="follow",
        event_key=f"follow:{event.follower_id}",
    )


@handles(
    FOLLOW_REQUESTED, name="notifications.follow_request", queue=NOTIFICATIONS_QUEUE, inline=True
)
async def follow_requested(
    state: AppState, sessions: ShardSessions, event: FollowRequested
) -> None:
    await notify(
        state,
        sessions,
        recipient_id=event.target_id,
        actor_id=event.requester_id,
        kind=NotificationKind.FOLLOW_REQUEST,
        group_key="follow_request",
        event_key=f"follow_request:{event.requester_id}",
    )


@handles(MESSAGE_SENT, name="notifications.message", queue=NOTIFICATIONS_QUEUE, inline=True)
async def message_sent(state: AppState, sessions: ShardSessions, event: MessageSent) -> None:
    story_reply = event.kind == "story_reply"
    kind = NotificationKind.STORY_REPLY if story_reply else NotificationKind.MESSAGE
    for member_id in event.member_ids:
        if member_id == event.sender_id:
            continue
        await notify(
            state,
            sessions,
            recipient_id=member_id,
            actor_id=event.sender_id,
            kind=kind,
            group_key=f"story_reply:{event.story_id}"
            if story_reply
            else f"message:{event.thread_id}",
            event_key=f"message:{event.message_id}",
            target=Target(thread_id=event.thread_id, story_id=event.story_id),
        )


@periodic("notifications.forget_events", interval=lambda settings: PURGE_INTERVAL.total_seconds())
async def forget_events(state: AppState) -> int:
    return await forget_old_events(state, ShardSessions(state.runtime.databases))
