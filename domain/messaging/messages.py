"""Messages: stored in the thread's shard, with the thread's next sequence number, before
anyone is told (the live event and inbox updates leave through ``message.sent`` after the
commit). Read marks and reactions are rows too; their live echo and the typing indicator
(never stored) are best-effort, and a client that missed them reads the thread again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db.messaging import repository as messaging_repo
from db.messaging.records import MessageKind, MessageRecord, ThreadRecord, message_record
from db.session import ShardSessions
from domain import events, realtime
from domain.errors import BadUserInput, Forbidden, MediaNotReady, NotFound
from domain.media.uploads import own_media
from domain.messaging.events import MEDIA_SENT, MESSAGE_SENT, MediaSent, MessageSent
from domain.messaging.threads import direct_thread, require_member
from domain.realtime import EventKind, LiveEvent
from domain.state import AppState
from domain.visibility import direct

MAX_MESSAGE_LENGTH = 1000
MAX_EMOJI_LENGTH = 16


@dataclass(frozen=True)
class MessageContent:
    text: str | None = None
    post_id: int | None = None
    media_id: int | None = None
    story_id: int | None = None


def _validate_text(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if len(text) > MAX_MESSAGE_LENGTH:
        raise BadUserInput(f"Messages are at most {MAX_MESSAGE_LENGTH} characters", field="text")
    return text or None


async def _kind_of(
    state: AppState, sessions: ShardSessions, viewer_id: int, content: MessageContent
) -> MessageKind:
    visibility = direct(state, sessions, viewer_id)
    if content.story_id is not None:
        await visibility.require_story(content.story_id)
        if content.text is None:
            raise BadUserInput("A story reply needs some text", field="text")
        return "story_reply"
    if content.post_id is not None:
        await visibility.require_post(content.post_id)
        return "post"
    if content.media_id is not None:
        media = await own_media(state, sessions, viewer_id, content.media_id)
        if media.status != "ready" or media.attached_to is not None:
            raise MediaNotReady(
                "Send media once it is processed, and only media not published elsewhere",
                mediaIds=[str(media.id)],
            )
        return "media"
    if content.text is None:
        raise BadUserInput("Send some text, a post or media", field="text")
    return "text"


async def send_to_user(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    user_id: int,
    content: MessageContent,
) -> MessageRecord:
    """A message in the viewer's one-to-one thread with ``user_id``, made on first use
    only for a message that may be sent: a refused one (a post the viewer may not see)
    leaves no empty thread in either inbox."""
    content = _checked(content)
    kind = await _kind_of(state, sessions, viewer_id, content)
    thread = await direct_thread(state, sessions, viewer_id, user_id)
    return await _send(state, sessions, viewer_id, thread.id, content, kind=kind)


def _checked(content: MessageContent) -> MessageContent:
    return MessageContent(
        text=_validate_text(content.text),
        post_id=content.post_id,
        media_id=content.media_id,
        story_id=content.story_id,
    )


async def send_message(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    thread_id: int,
    content: MessageContent,
) -> MessageRecord:
    content = _checked(content)
    kind = await _kind_of(state, sessions, viewer_id, content)
    return await _send(state, sessions, viewer_id, thread_id, content, kind=kind)


async def _send(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    thread_id: int,
    content: MessageContent,
    *,
    kind: MessageKind,
) -> MessageRecord:
    """``content``, checked, of ``kind`` (``_kind_of``), into the thread."""
    thread, members = await require_member(state, sessions, viewer_id, thread_id)
    member_ids = [member.user_id for member in members]
    if thread.kind == "direct":
        others = [user_id for user_id in member_ids if user_id != viewer_id]
        if await direct(state, sessions, viewer_id).unblocked(others) != others:
            raise Forbidden("You cannot message this account")
    async with sessions.for_id(thread_id) as session:
        seq = await messaging_repo.take_sequence(session, thread_id, now=state.clock())
        if seq is None:
            raise NotFound("No such thread")
        row = await messaging_repo.insert_message(
            session,
            thread_id=thread_id,
            seq=seq,
            sender_id=viewer_id,
            kind=kind,
            body=content.text,
            post_id=content.post_id,
            media_id=content.media_id,
            story_id=content.story_id,
            created_at=state.clock(),
        )
        # The sender has read up to their own message.
        await messaging_repo.mark_read(session, thread_id, viewer_id, seq=seq)
        owed = await events.emit(
            session,
            MESSAGE_SENT,
            MessageSent(
                thread_id=thread_id,
                seq=seq,
                message_id=row.id,
                sender_id=viewer_id,
                member_ids=member_ids,
                request_member_ids=[],
                kind=kind,
                story_id=content.story_id,
            ),
        )
        if content.media_id is not None:
            owed += await events.emit(
                session,
                MEDIA_SENT,
                MediaSent(message_id=row.id, sender_id=viewer_id, media_id=content.media_id),
            )
        message = message_record(row)
    await events.relay(state, sessions, owed)
    return message


async def thread_messages(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    thread_id: int,
    *,
    after_seq: int | None,
    before_seq: int | None,
    limit: int,
) -> tuple[list[MessageRecord], bool]:
    """A page of the thread's messages, oldest first, and whether more lie beyond it: after
    ``after_seq`` going forward (catching up), else before ``before_seq`` (or the newest)
    going back."""
    await require_member(state, sessions, viewer_id, thread_id)
    async with sessions.for_id(thread_id) as session:
        if after_seq is not None:
            rows = await messaging_repo.messages_after(
                session, thread_id, after_seq=after_seq, limit=limit + 1
            )
            more = len(rows) > limit
            rows = rows[:limit]
        else:
            rows = await messaging_repo.messages_before(
                session, thread_id, before_seq=before_seq, limit=limit + 1
            )
            more = len(rows) > limit
            rows = rows[-limit:] if limit else []
    records = [message_record(row) for row in rows]
    return await direct(state, sessions, viewer_id).messages(records), more


async def live_members(
    state: AppState, sessions: ShardSessions, actor_id: int, member_ids: Sequence[int]
) -> list[int]:
    """Who gets a live event caused by ``actor_id``: the members without a block with them."""
    return await direct(state, sessions, actor_id).unblocked(list(member_ids))


async def mark_read(
    state: AppState, sessions: ShardSessions, viewer_id: int, thread_id: int, *, seq: int
) -> ThreadRecord:
    thread, members = await require_member(state, sessions, viewer_id, thread_id)
    if seq < 0 or seq > thread.last_seq:
        raise BadUserInput("No message has that sequence number", field="seq")
    async with sessions.for_id(thread_id) as session:
        moved = await messaging_repo.mark_read(session, thread_id, viewer_id, seq=seq)
    if moved:
        recipients = await live_members(state, sessions, viewer_id, [m.user_id for m in members])
        await realtime.publish(
            state,
            recipients,
            LiveEvent(kind=EventKind.READ, thread_id=thread_id, seq=seq, user_id=viewer_id),
        )
    return thread


async def react(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    thread_id: int,
    *,
    seq: int,
    emoji: str | None,
) -> MessageRecord:
    if emoji is not None:
        emoji = emoji.strip()
        if not emoji or len(emoji) > MAX_EMOJI_LENGTH or any(ch.isspace() for ch in emoji):
            raise BadUserInput("A reaction is one emoji", field="emoji")
    _, members = await require_member(state, sessions, viewer_id, thread_id)
    # Decided before writing: a reaction to a message the viewer may not read is refused
    # as if the message did not exist, and leaves nothing behind.
    hidden = await direct(state, sessions, viewer_id).hidden_senders()
    async with sessions.for_id(thread_id) as session:
        row = await messaging_repo.get_message(session, thread_id, seq)
        if row is None or row.sender_id in hidden:
            raise NotFound("No such message")
        changed = await messaging_repo.set_reaction(
            session, thread_id=thread_id, seq=seq, user_id=viewer_id, emoji=emoji
        )
        message = message_record(row)
    if changed:
        recipients = await live_members(state, sessions, viewer_id, [m.user_id for m in members])
        await realtime.publish(
            state,
            recipients,
            LiveEvent(
                kind=EventKind.REACTION,
                thread_id=thread_id,
                seq=seq,
                user_id=viewer_id,
                emoji=emoji,
            ),
        )
    return message


async def typing(state: AppState, sessions: ShardSessions, viewer_id: int, thread_id: int) -> None:
    """Tell the other members the viewer is typing: ephemeral, never stored."""
    _, members = await require_member(state, sessions, viewer_id, thread_id)
    others = [member.user_id for member in members if member.user_id != viewer_id]
    recipients = await live_members(state, sessions, viewer_id, others)
    await realtime.publish(
        state, recipients, LiveEvent(kind=EventKind.TYPING, thread_id=thread_id, user_id=viewer_id)
    )


async def reactions_of(
    sessions: ShardSessions, messages: Sequence[MessageRecord]
) -> dict[tuple[int, int], list[tuple[int, str]]]:
    keys = [(message.thread_id, message.seq) for message in messages]
    found: dict[tuple[int, int], list[tuple[int, str]]] = {key: [] for key in keys}

    async def per_shard(session: AsyncSession, ids: list[int]) -> list[tuple[int, int, int, str]]:
        wanted = [key for key in keys if key[0] in set(ids)]
        rows = await messaging_repo.reactions_of(session, wanted)
        return [(row.thread_id, row.seq, row.user_id, row.emoji) for row in rows]

    rows = await sessions.scatter_ids({key[0] for key in keys}, per_shard)
    for thread_id, seq, user_id, emoji in rows:
        found[(thread_id, seq)].append((user_id, emoji))
    return found
