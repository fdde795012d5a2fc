"""Every SQL statement about threads, members, messages, reactions and inboxes. Sessions
are bound to the thread's shard, except the inbox functions, bound to the member's."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.messaging.models import (
    DirectThread,
    InboxEntry,
    Message,
    MessageReaction,
    Thread,
    ThreadMember,
)
from db.messaging.records import ThreadMemberRecord, thread_member_record


async def lock_pair(session: AsyncSession, low: int, high: int) -> None:
    """Serialise the creation of one pair's thread for the rest of the transaction."""
    await session.execute(select(func.pg_advisory_xact_lock(low ^ high)))


async def direct_thread_id(session: AsyncSession, low: int, high: int) -> int | None:
    found: int | None = await session.scalar(
        select(DirectThread.thread_id).where(
            DirectThread.user_low == low, DirectThread.user_high == high
        )
    )
    return found


async def insert_thread(
    session: AsyncSession, *, kind: str, title: str | None, created_by: int
) -> Thread:
    thread: Thread | None = await session.scalar(
        insert(Thread).values(kind=kind, title=title, created_by=created_by).returning(Thread)
    )
    assert thread is not None
    return thread


async def insert_direct(session: AsyncSession, *, low: int, high: int, thread_id: int) -> None:
    await session.execute(
        insert(DirectThread).values(user_low=low, user_high=high, thread_id=thread_id)
    )


async def add_members(
    session: AsyncSession, thread_id: int, user_ids: Sequence[int], *, added_by: int
) -> list[int]:
    """Add (or bring back) members; the ids that were not active members before."""
    if not user_ids:
        return []
    active = set(
        await session.scalars(
            select(ThreadMember.user_id).where(
                ThreadMember.thread_id == thread_id,
                ThreadMember.user_id.in_(user_ids),
                ThreadMember.left_at.is_(None),
            )
        )
    )
    new = [user_id for user_id in dict.fromkeys(user_ids) if user_id not in active]
    if new:
        statement = insert(ThreadMember).values(
            [{"thread_id": thread_id, "user_id": user_id, "added_by": added_by} for user_id in new]
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[ThreadMember.thread_id, ThreadMember.user_id],
                set_={"left_at": None, "added_by": added_by, "joined_at": func.now()},
            )
        )
    return new


async def active_members(session: AsyncSession, thread_id: int) -> list[ThreadMemberRecord]:
    rows = await session.scalars(
        select(ThreadMember)
        .where(ThreadMember.thread_id == thread_id, ThreadMember.left_at.is_(None))
        .order_by(ThreadMember.joined_at, ThreadMember.user_id)
    )
    return [thread_member_record(row) for row in rows]


async def members_of(
    session: AsyncSession, thread_ids: Sequence[int]
) -> dict[int, list[ThreadMemberRecord]]:
    found: dict[int, list[ThreadMemberRecord]] = {thread_id: [] for thread_id in thread_ids}
    if not thread_ids:
        return found
    rows = await session.scalars(
        select(ThreadMember)
        .where(ThreadMember.thread_id.in_(thread_ids), ThreadMember.left_at.is_(None))
        .order_by(ThreadMember.joined_at, ThreadMember.user_id)
    )
    for row in rows:
        found[row.thread_id].append(thread_member_record(row))
    return found


async def leave(session: AsyncSession, thread_id: int, user_id: int, *, now: datetime) -> bool:
    result = await session.execute(
        update(ThreadMember)
        .where(
            ThreadMember.thread_id == thread_id,
            ThreadMember.user_id == user_id,
            ThreadMember.left_at.is_(None),
        )
        .values(left_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def take_sequence(session: AsyncSession, thread_id: int, *, now: datetime) -> int | None:
    """The next message's sequence number, holding the thread's row lock until commit."""
    seq: int | None = await session.scalar(
        update(Thread)
        .where(Thread.id == thread_id)
        .values(last_seq=Thread.last_seq + 1, last_message_at=now)
        .returning(Thread.last_seq)
    )
    return seq


async def insert_message(
    session: AsyncSession,
    *,
    thread_id: int,
    seq: int,
    sender_id: int,
    kind: str,
    body: str | None,
    post_id: int | None,
    media_id: int | None,
    story_id: int | None,
    created_at: datetime,
) -> Message:
    message: Message | None = await session.scalar(
        insert(Message)
        .values(
            thread_id=thread_id,
            seq=seq,
            sender_id=sender_id,
            kind=kind,
            body=body,
            post_id=post_id,
            media_id=media_id,
            story_id=story_id,
            created_at=created_at,
        )
        .returning(Message)
    )
    assert message is not None
    return message


async def messages_after(
    session: AsyncSession, thread_id: int, *, after_seq: int, limit: int
) -> list[Message]:
    return list(
        await session.scalars(
            select(Message)
            .where(Message.thread_id == thread_id, Message.seq > after_seq)
            .order_by(Message.seq)
            .limit(limit)
        )
    )


async def messages_before(
    session: AsyncSession, thread_id: int, *, before_seq: int | None, limit: int
) -> list[Message]:
    """The ``limit`` messages before ``before_seq`` (the newest when None), oldest first."""
    query = select(Message).where(Message.thread_id == thread_id)
    if before_seq is not None:
        query = query.where(Message.seq < before_seq)
    rows = list(await session.scalars(query.order_by(Message.seq.desc()).limit(limit)))
    rows.reverse()
    return rows


async def get_message(session: AsyncSession, thread_id: int, seq: int) -> Message | None:
    found: Message | None = await session.get(Message, (thread_id, seq))
    return found


async def last_messages(session: AsyncSession, threads: Sequence[Thread]) -> list[Message]:
    keys = [(thread.id, thread.last_seq) for thread in threads if thread.last_seq]
    if not keys:
        return []
    return list(
        await session.scalars(
            select(Message).where(
                func.row(Message.thread_id, Message.seq).in_(
                    [func.row(thread_id, seq) for thread_id, seq in keys]
                )
            )
        )
    )


async def set_reaction(
    session: AsyncSession, *, thread_id: int, seq: int, user_id: int, emoji: str | None
) -> bool:
    """Set (or with None, remove) a member's reaction; whether anything changed."""
    if emoji is None:
        result = await session.execute(
            delete(MessageReaction).where(
                MessageReaction.thread_id == thread_id,
                MessageReaction.seq == seq,
                MessageReaction.user_id == user_id,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
    statement = insert(MessageReaction).values(
        thread_id=thread_id, seq=seq, user_id=user_id, emoji=emoji
    )
    changed = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=[
                MessageReaction.thread_id,
                MessageReaction.seq,
                MessageReaction.user_id,
            ],
            set_={"emoji": emoji, "reacted_at": func.now()},
            where=MessageReaction.emoji != emoji,
        ).returning(MessageReaction.user_id)
    )
    return changed is not None


async def reactions_of(
    session: AsyncSession, keys: Sequence[tuple[int, int]]
) -> list[MessageReaction]:
    if not keys:
        return []
    return list(
        await session.scalars(
            select(MessageReaction)
            .where(
                func.row(MessageReaction.thread_id, MessageReaction.seq).in_(
                    [func.row(thread_id, seq) for thread_id, seq in keys]
                )
            )
            .order_by(MessageReaction.reacted_at)
        )
    )


async def mark_read(session: AsyncSession, thread_id: int, user_id: int, *, seq: int) -> bool:
    """Move a member's read mark forward to ``seq``; False if it was there already."""
    result = await session.execute(
        update(ThreadMember)
        .where(
            ThreadMember.thread_id == thread_id,
            ThreadMember.user_id == user_id,
            ThreadMember.left_at.is_(None),
            ThreadMember.last_read_seq < seq,
        )
        .values(last_read_seq=seq)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def get_threads(session: AsyncSession, ids: Sequence[int]) -> list[Thread]:
    if not ids:
        return []
    return list(await session.scalars(select(Thread).where(Thread.id.in_(ids))))


async def unread_counts(
    session: AsyncSession,
    viewer_id: int,
    thread_ids: Sequence[int],
    *,
    hidden_senders: Collection[int] = (),
) -> dict[int, int]:
    """Messages from others after the viewer's read mark, per thread, leaving out those
    of ``hidden_senders``."""
    if not thread_ids:
        return {}
    query = (
        select(Message.thread_id, func.count())
        .join(
            ThreadMember,
            and_(ThreadMember.thread_id == Message.thread_id, ThreadMember.user_id == viewer_id),
        )
        .where(
            Message.thread_id.in_(thread_ids),
            Message.seq > ThreadMember.last_read_seq,
            Message.sender_id != viewer_id,
        )
    )
    if hidden_senders:
        query = query.where(Message.sender_id.not_in(list(hidden_senders)))
    rows = await session.execute(query.group_by(Message.thread_id))
    return {int(thread_id): int(count) for thread_id, count in rows}


# Inbox entries: sessions bound to the member's shard.


async def touch_inbox(
    session: AsyncSession, entries: Sequence[tuple[int, str]], *, thread_id: int, activity_id: int
) -> None:
    """Move the thread up in each (member, folder for a new entry)'s inbox; idempotent."""
    if not entries:
        return
    statement = insert(InboxEntry).values(
        [
            {
                "user_id": user_id,
                "thread_id": thread_id,
                "folder": folder,
                "last_activity_id": activity_id,
            }
            for user_id, folder in entries
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[InboxEntry.user_id, InboxEntry.thread_id],
            set_={"last_activity_id": func.greatest(InboxEntry.last_activity_id, activity_id)},
        )
    )


async def inbox_entry(session: AsyncSession, user_id: int, thread_id: int) -> InboxEntry | None:
    found: InboxEntry | None = await session.get(InboxEntry, (user_id, thread_id))
    return found


async def set_folder(session: AsyncSession, user_id: int, thread_id: int, *, folder: str) -> bool:
    result = await session.execute(
        update(InboxEntry)
        .where(InboxEntry.user_id == user_id, InboxEntry.thread_id == thread_id)
        .values(folder=folder)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def remove_inbox(session: AsyncSession, user_id: int, thread_id: int) -> None:
    await session.execute(
        delete(InboxEntry).where(InboxEntry.user_id == user_id, InboxEntry.thread_id == thread_id)
    )


async def inbox_page(
    session: AsyncSession, user_id: int, *, folder: str, before_activity: int | None, limit: int
) -> list[InboxEntry]:
    query = select(InboxEntry).where(InboxEntry.user_id == user_id, InboxEntry.folder == folder)
    if before_activity is not None:
        query = query.where(InboxEntry.last_activity_id < before_activity)
    return list(
        await session.scalars(query.order_by(InboxEntry.last_activity_id.desc()).limit(limit))
    )
