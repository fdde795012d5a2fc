"""Threads: one-to-one (found by the pair, in the shard the pair hashes to) or groups of
up to 32 (in the creator's shard). A private account's threads with people it does not
follow land in its request folder until it accepts or replies."""

from __future__ import annotations

from collections.abc import Sequence

from db.messaging import repository as messaging_repo
from db.messaging.records import ThreadMemberRecord, ThreadRecord, thread_record
from db.session import ShardSessions
from domain import events
from domain.errors import BadUserInput, Forbidden, NotFound
from domain.messaging.events import THREAD_MEMBERS_CHANGED, MembersChanged
from domain.state import AppState
from domain.visibility import Visibility, direct, message_request_members

MAX_GROUP_MEMBERS = 32
MAX_TITLE = 100


async def _require_reachable(visibility: Visibility, user_ids: Sequence[int]) -> None:
    """Everyone must exist and have no block with the viewer, either way."""
    users = await visibility.users(list(user_ids))
    missing = [str(user_id) for user_id, user in zip(user_ids, users, strict=True) if user is None]
    if missing:
        raise Forbidden("You cannot message these accounts", userIds=missing)


async def direct_thread(
    state: AppState, sessions: ShardSessions, viewer_id: int, other_id: int
) -> ThreadRecord:
    """The viewer's one-to-one thread with ``other_id``, created on first use."""
    if other_id == viewer_id:
        raise BadUserInput("Message someone else", field="userId")
    await _require_reachable(direct(state, sessions, viewer_id), [other_id])
    low, high = sorted((viewer_id, other_id))
    shard = sessions.shard_map.shard_for_direct_thread(low, high)
    async with sessions.shard(shard) as session:
        await messaging_repo.lock_pair(session, low, high)
        thread_id = await messaging_repo.direct_thread_id(session, low, high)
        if thread_id is not None:
            (thread,) = await messaging_repo.get_threads(session, [thread_id])
            return thread_record(thread)
        thread = await messaging_repo.insert_thread(
            session, kind="direct", title=None, created_by=viewer_id
        )
        await messaging_repo.insert_direct(session, low=low, high=high, thread_id=thread.id)
        await messaging_repo.add_members(
            session, thread.id, [viewer_id, other_id], added_by=viewer_id
        )
        requests = await message_request_members(state, sessions, viewer_id, [other_id])
        owed = await events.emit(
            session,
            THREAD_MEMBERS_CHANGED,
            MembersChanged(
                thread_id=thread.id,
                actor_id=viewer_id,
                added_ids=[viewer_id, other_id],
                removed_ids=[],
                request_member_ids=requests,
                activity_id=thread.id,
            ),
        )
        record = thread_record(thread)
    await events.relay(state, sessions, owed)
    return record


def _validate_title(title: str | None) -> str | None:
    if title is None:
        return None
    title = title.strip()
    if len(title) > MAX_TITLE:
        raise BadUserInput(f"Titles are at most {MAX_TITLE} characters", field="title")
    return title or None


async def create_group(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    *,
    member_ids: Sequence[int],
    title: str | None,
) -> ThreadRecord:
    others = [user_id for user_id in dict.fromkeys(member_ids) if user_id != viewer_id]
    if not others:
        raise BadUserInput("A group needs someone besides you", field="userIds")
    if len(others) + 1 > MAX_GROUP_MEMBERS:
        raise BadUserInput(f"Groups have at most {MAX_GROUP_MEMBERS} members", field="userIds")
    title = _validate_title(title)
    await _require_reachable(direct(state, sessions, viewer_id), others)
    requests = await message_request_members(state, sessions, viewer_id, others)
    async with sessions.for_id(viewer_id) as session:
        thread = await messaging_repo.insert_thread(
            session, kind="group", title=title, created_by=viewer_id
        )
        await messaging_repo.add_members(
            session, thread.id, [viewer_id, *others], added_by=viewer_id
        )
        owed = await events.emit(
            session,
            THREAD_MEMBERS_CHANGED,
            MembersChanged(
                thread_id=thread.id,
                actor_id=viewer_id,
                added_ids=[viewer_id, *others],
                removed_ids=[],
                request_member_ids=requests,
                activity_id=thread.id,
            ),
        )
        record = thread_record(thread)
    await events.relay(state, sessions, owed)
    return record


async def thread_and_members(
    sessions: ShardSessions, thread_id: int
) -> tuple[ThreadRecord, list[ThreadMemberRecord]] | None:
    async with sessions.for_id(thread_id) as session:
        threads = await messaging_repo.get_threads(session, [thread_id])
        if not threads:
            return None
        members = await messaging_repo.active_members(session, thread_id)
    return thread_record(threads[0]), members


async def require_member(
    state: AppState, sessions: ShardSessions, viewer_id: int, thread_id: int
) -> tuple[ThreadRecord, list[ThreadMemberRecord]]:
    found = None
    if sessions.shard_map.exists(thread_id >> 10 & 0x1FFF):
        found = await thread_and_members(sessions, thread_id)
    if found is None or not direct(state, sessions, viewer_id).in_thread(found[1]):
        # Not told apart: whether a thread exists is nobody else's business.
        raise NotFound("No such thread")
    return found


async def change_members(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    thread_id: int,
    *,
    add: Sequence[int] = (),
    remove: Sequence[int] = (),
) -> ThreadRecord:
    """Add members to a group (any member may), remove them (its creator may, and anyone
    may remove themselves: leaving)."""
    thread, members = await require_member(state, sessions, viewer_id, thread_id)
    if thread.kind != "group":
        raise BadUserInput("Only groups change members", field="threadId")
    current = {member.user_id for member in members}
    adding = [user_id for user_id in dict.fromkeys(add) if user_id not in current]
    removing = [user_id for user_id in dict.fromkeys(remove) if user_id in current]
    if any(user_id != viewer_id for user_id in removing) and thread.created_by != viewer_id:
        raise Forbidden("Only the group's creator removes others")
    if len(current) + len(adding) - len(removing) > MAX_GROUP_MEMBERS:
        raise BadUserInput(f"Groups have at most {MAX_GROUP_MEMBERS} members", field="userIds")
    if adding:
        await _require_reachable(direct(state, sessions, viewer_id), adding)
    requests = await message_request_members(state, sessions, viewer_id, adding)
    now = state.clock()
    async with sessions.for_id(thread_id) as session:
        await messaging_repo.add_members(session, thread_id, adding, added_by=viewer_id)
        for user_id in removing:
            await messaging_repo.leave(session, thread_id, user_id, now=now)
        owed = await events.emit(
            session,
            THREAD_MEMBERS_CHANGED,
            MembersChanged(
                thread_id=thread_id,
                actor_id=viewer_id,
                added_ids=adding,
                removed_ids=removing,
                request_member_ids=requests,
                activity_id=thread.id,
            ),
        )
    await events.relay(state, sessions, owed)
    return thread


async def accept_request(
    state: AppState, sessions: ShardSessions, viewer_id: int, thread_id: int
) -> ThreadRecord:
    thread, _ = await require_member(state, sessions, viewer_id, thread_id)
    async with sessions.for_id(viewer_id) as session:
        await messaging_repo.set_folder(session, viewer_id, thread_id, folder="primary")
    return thread
