"""The inbox: a member's threads by last activity, one query on the member's shard, then
the threads, their last messages, members and unread counts, one query per thread shard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from db.messaging import repository as messaging_repo
from db.messaging.records import MessageRecord, ThreadRecord, message_record, thread_record
from db.session import ShardSessions
from domain.state import AppState
from domain.visibility import direct

Folder = str  # "primary" or "requests"


@dataclass(frozen=True)
class InboxThread:
    thread: ThreadRecord
    activity_id: int
    member_ids: list[int]
    unread_count: int
    last_message: MessageRecord | None
    read_marks: dict[int, int] = field(default_factory=dict)


async def inbox(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    *,
    folder: Folder,
    before_activity: int | None,
    limit: int,
) -> tuple[list[InboxThread], bool]:
    async with sessions.for_id(viewer_id) as session:
        entries = await messaging_repo.inbox_page(
            session, viewer_id, folder=folder, before_activity=before_activity, limit=limit + 1
        )
    more = len(entries) > limit
    entries = entries[:limit]
    found = await thread_summaries(
        state, sessions, viewer_id, [entry.thread_id for entry in entries]
    )
    page = []
    for entry in entries:
        summary = found.get(entry.thread_id)
        if summary is None or viewer_id not in summary.member_ids:
            continue  # left or removed meanwhile
        page.append(
            InboxThread(
                thread=summary.thread,
                activity_id=entry.last_activity_id,
                member_ids=summary.member_ids,
                unread_count=summary.unread_count,
                last_message=summary.last_message,
                read_marks=summary.read_marks,
            )
        )
    return page, more


async def thread_summaries(
    state: AppState, sessions: ShardSessions, viewer_id: int, thread_ids: Sequence[int]
) -> dict[int, InboxThread]:
    """The threads as the viewer may see them: a last message whose sender is hidden from
    them (a block, either way) is left out, and so are such messages from unread counts."""
    hidden = await direct(state, sessions, viewer_id).hidden_senders()

    async def per_shard(session: AsyncSession, ids: list[int]) -> list[InboxThread]:
        threads = await messaging_repo.get_threads(session, ids)
        members = await messaging_repo.members_of(session, ids)
        last = {
            row.thread_id: message_record(row)
            for row in await messaging_repo.last_messages(session, threads)
            if row.sender_id not in hidden
        }
        unread = await messaging_repo.unread_counts(session, viewer_id, ids, hidden_senders=hidden)
        return [
            InboxThread(
                thread=thread_record(thread),
                activity_id=thread.id,
                member_ids=[member.user_id for member in members[thread.id]],
                unread_count=unread.get(thread.id, 0),
                last_message=last.get(thread.id),
                read_marks={member.user_id: member.last_read_seq for member in members[thread.id]},
            )
            for thread in threads
        ]

    summaries = await sessions.scatter_ids(thread_ids, per_shard)
    return {summary.thread.id: summary for summary in summaries}
