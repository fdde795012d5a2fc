"""Direct messages' reactions to their own events: inboxes and live delivery, right after
the commit (inline), with the queue as the fallback. Registered here, found by
``domain.jobs.load_features``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from db.messaging import repository as messaging_repo
from db.messaging.records import message_record
from db.session import ShardSessions
from domain import realtime
from domain.accounts.events import SESSION_ENDED, SessionEnded
from domain.events import handles
from domain.messaging.events import (
    MESSAGE_SENT,
    THREAD_MEMBERS_CHANGED,
    MembersChanged,
    MessageSent,
)
from domain.messaging.messages import live_members
from domain.realtime import EventKind, LiveEvent
from domain.state import AppState
from domain.visibility import message_request_members

MESSAGING_QUEUE = "messaging"


# Here because every live stream (messages and notifications) ends with the session.
@handles(SESSION_ENDED, name="realtime.end_session", queue=MESSAGING_QUEUE, inline=True)
async def end_session(state: AppState, sessions: ShardSessions, event: SessionEnded) -> None:
    await realtime.publish(
        state,
        [event.user_id],
        LiveEvent(kind=EventKind.SESSION_ENDED, session_hash=event.session_hash),
    )


async def _touch_inboxes(
    sessions: ShardSessions,
    *,
    thread_id: int,
    activity_id: int,
    member_ids: Sequence[int],
    request_ids: Sequence[int],
) -> None:
    by_shard: dict[int, list[tuple[int, str]]] = defaultdict(list)
    requests = set(request_ids)
    for user_id in member_ids:
        folder = "requests" if user_id in requests else "primary"
        by_shard[sessions.shard_map.shard_for_id(user_id)].append((user_id, folder))
    for shard, entries in by_shard.items():
        async with sessions.shard(shard) as session:
            await messaging_repo.touch_inbox(
                session, entries, thread_id=thread_id, activity_id=activity_id
            )


@handles(MESSAGE_SENT, name="messaging.deliver", queue=MESSAGING_QUEUE, inline=True)
async def deliver_message(state: AppState, sessions: ShardSessions, event: MessageSent) -> None:
    async with sessions.for_id(event.thread_id) as session:
        row = await messaging_repo.get_message(session, event.thread_id, event.seq)
    if row is None:
        return
    message = message_record(row)
    # Inboxes first: a client told of the message (or of its notification) finds the
    # thread in its inbox when it looks. The folder counts only for an entry made now:
    # the thread's members event makes them, but the first message may get there first,
    # so for it the folders are the policy's (a request for some), not all PRIMARY.
    request_ids = event.request_member_ids
    if not request_ids and event.seq == 1:
        others = [member for member in event.member_ids if member != event.sender_id]
        request_ids = await message_request_members(state, sessions, event.sender_id, others)
    await _touch_inboxes(
        sessions,
        thread_id=event.thread_id,
        activity_id=event.message_id,
        member_ids=event.member_ids,
        request_ids=request_ids,
    )
    # Replying accepts a request.
    async with sessions.for_id(event.sender_id) as session:
        await messaging_repo.set_folder(session, event.sender_id, event.thread_id, folder="primary")
    recipients = await live_members(state, sessions, event.sender_id, event.member_ids)
    await realtime.publish(
        state,
        recipients,
        LiveEvent(
            kind=EventKind.MESSAGE, thread_id=event.thread_id, seq=event.seq, message=message
        ),
    )


@handles(THREAD_MEMBERS_CHANGED, name="messaging.members", queue=MESSAGING_QUEUE, inline=True)
async def members_changed(state: AppState, sessions: ShardSessions, event: MembersChanged) -> None:
    await _touch_inboxes(
        sessions,
        thread_id=event.thread_id,
        activity_id=event.activity_id,
        member_ids=event.added_ids,
        request_ids=event.request_member_ids,
    )
    for user_id in event.removed_ids:
        async with sessions.for_id(user_id) as session:
            await messaging_repo.remove_inbox(session, user_id, event.thread_id)
    async with sessions.for_id(event.thread_id) as session:
        members = await messaging_repo.active_members(session, event.thread_id)
    await realtime.publish(
        state,
        [member.user_id for member in members],
        LiveEvent(kind=EventKind.THREAD_UPDATED, thread_id=event.thread_id, user_id=event.actor_id),
    )
    await realtime.publish(
        state,
        event.removed_ids,
        LiveEvent(kind=EventKind.REMOVED_FROM_THREAD, thread_id=event.thread_id),
    )
