"""Direct message rules, called on the domain directly (domain/messaging/): one thread per
pair, groups of at most 32, a private account's threads with people it does not follow in
its request folder until it accepts or replies, read marks and unread counts, and the
messages of anyone on the other side of a block hidden from the reader."""

from __future__ import annotations

import asyncio

import pytest

from db.accounts.records import UserRecord as User
from db.ids import shard_of
from db.session import ShardSessions
from domain.accounts import blocks
from domain.errors import BadUserInput, Forbidden, MediaNotReady, NotFound
from domain.media.uploads import load_media
from domain.messaging import inbox, messages, threads
from domain.messaging.messages import MessageContent
from domain.state import AppState
from tests.domain.support import follow_approved, new_post, new_user, ready_media, unknown_id


async def folder_of(
    state: AppState, sessions: ShardSessions, user: User, thread_id: int
) -> str | None:
    """The inbox folder the thread is in for ``user``, or None when it is in neither."""
    for folder in ("primary", "requests"):
        page, _ = await inbox.inbox(
            state, sessions, user.id, folder=folder, before_activity=None, limit=50
        )
        if thread_id in {entry.thread.id for entry in page}:
            return folder
    return None


async def entry_of(
    state: AppState, sessions: ShardSessions, user: User, thread_id: int
) -> inbox.InboxThread:
    return (await inbox.thread_summaries(state, sessions, user.id, [thread_id]))[thread_id]


async def say(
    state: AppState, sessions: ShardSessions, sender: User, thread_id: int, text: str
) -> int:
    sent = await messages.send_message(
        state, sessions, sender.id, thread_id, MessageContent(text=text)
    )
    return sent.seq


async def bodies(
    state: AppState, sessions: ShardSessions, reader: User, thread_id: int
) -> list[str | None]:
    page, _ = await messages.thread_messages(
        state, sessions, reader.id, thread_id, after_seq=None, before_seq=None, limit=50
    )
    return [message.body for message in page]


async def test_one_thread_per_pair_whoever_starts_it(
    state: AppState, sessions: ShardSessions
) -> None:
    ana, bo = await new_user(state, sessions, "ana"), await new_user(state, sessions, "bo")
    # Both at once still make one thread.
    first, second = await asyncio.gather(
        threads.direct_thread(state, sessions, ana.id, bo.id),
        threads.direct_thread(state, sessions, bo.id, ana.id),
    )
    assert first.id == second.id
    assert first.kind == "direct"
    assert (await threads.direct_thread(state, sessions, ana.id, bo.id)).id == first.id
    with pytest.raises(BadUserInput):
        await threads.direct_thread(state, sessions, ana.id, ana.id)
    with pytest.raises(Forbidden):
        await threads.direct_thread(state, sessions, ana.id, unknown_id(shard=shard_of(ana.id)))


async def test_no_thread_or_message_across_a_block(
    state: AppState, sessions: ShardSessions
) -> None:
    ana, bo = await new_user(state, sessions, "friend"), await new_user(state, sessions, "foe")
    thread = await threads.direct_thread(state, sessions, ana.id, bo.id)
    await say(state, sessions, bo, thread.id, "before")
    await blocks.block(state, sessions, ana.id, bo.id)
    for sender, receiver in ((ana, bo), (bo, ana)):
        with pytest.raises(Forbidden):
            await threads.direct_thread(state, sessions, sender.id, receiver.id)
        with pytest.raises(Forbidden):
            await say(state, sessions, sender, thread.id, "after")
    # What the blocked one said before is hidden from the blocker too.
    assert await bodies(state, sessions, ana, thread.id) == []
    assert (await entry_of(state, sessions, ana, thread.id)).last_message is None


async def test_group_members_are_bounded_and_only_the_creator_removes_others(
    state: AppState, sessions: ShardSessions
) -> None:
    host = await new_user(state, sessions, "host")
    guest, other = await new_user(state, sessions, "guest"), await new_user(state, sessions, "o")
    nobody = [unknown_id(shard=shard_of(host.id)) + n for n in range(40)]
    # The size is checked first: 33 members is too many, whoever they are; 32 is not (these
    # ids name nobody, which is what refuses them).
    with pytest.raises(BadUserInput):
        await threads.create_group(
            state, sessions, host.id, member_ids=nobody[: threads.MAX_GROUP_MEMBERS], title=None
        )
    with pytest.raises(Forbidden):
        await threads.create_group(
            state,
            sessions,
            host.id,
            member_ids=nobody[: threads.MAX_GROUP_MEMBERS - 1],
            title=None,
        )
    with pytest.raises(BadUserInput):
        await threads.create_group(state, sessions, host.id, member_ids=[host.id], title=None)
    with pytest.raises(BadUserInput):
        await threads.create_group(state, sessions, host.id, member_ids=[guest.id], title="x" * 101)

    # The creator counts once, and so does a member named twice; a blank title is none.
    group = await threads.create_group(
        state, sessions, host.id, member_ids=[guest.id, guest.id, host.id], title="  "
    )
    assert group.title is None
    assert sorted((await entry_of(state, sessions, host, group.id)).member_ids) == sorted(
        [host.id, guest.id]
    )
    with pytest.raises(BadUserInput):
        await threads.change_members(
            state, sessions, guest.id, group.id, add=nobody[: threads.MAX_GROUP_MEMBERS - 1]
        )
    # Any member adds; only the creator removes someone else; anyone leaves.
    await threads.change_members(state, sessions, guest.id, group.id, add=[other.id])
    with pytest.raises(Forbidden):
        await threads.change_members(state, sessions, guest.id, group.id, remove=[other.id])
    await threads.change_members(state, sessions, other.id, group.id, remove=[other.id])
    with pytest.raises(NotFound):
        await bodies(state, sessions, other, group.id)
    assert await folder_of(state, sessions, other, group.id) is None
    await threads.change_members(state, sessions, host.id, group.id, remove=[guest.id])
    with pytest.raises(NotFound):
        await say(state, sessions, guest, group.id, "still here?")
    # A one-to-one thread never changes members.
    pair = await threads.direct_thread(state, sessions, host.id, other.id)
    with pytest.raises(BadUserInput):
        await threads.change_members(state, sessions, host.id, pair.id, add=[guest.id])


async def test_a_private_account_gets_strangers_threads_as_requests(
    state: AppState, sessions: ShardSessions
) -> None:
    private = await new_user(state, sessions, "celebrity", private=True)
    stranger = await new_user(state, sessions, "stranger")
    friend = await new_user(state, sessions, "insider")
    public = await new_user(state, sessions, "open")
    await follow_approved(state, sessions, private, friend)

    cold = await messages.send_to_user(
        state, sessions, stranger.id, private.id, MessageContent(text="hi!")
    )
    warm = await messages.send_to_user(
        state, sessions, friend.id, private.id, MessageContent(text="hey")
    )
    to_public = await messages.send_to_user(
        state, sessions, stranger.id, public.id, MessageContent(text="hello")
    )
    assert await folder_of(state, sessions, private, cold.thread_id) == "requests"
    assert await folder_of(state, sessions, stranger, cold.thread_id) == "primary"
    assert await folder_of(state, sessions, private, warm.thread_id) == "primary"
    assert await folder_of(state, sessions, public, to_public.thread_id) == "primary"
    # The stranger's next message leaves the request a request; accepting it moves it.
    await say(state, sessions, stranger, cold.thread_id, "hello?")
    assert await folder_of(state, sessions, private, cold.thread_id) == "requests"
    await threads.accept_request(state, sessions, private.id, cold.thread_id)
    assert await folder_of(state, sessions, private, cold.thread_id) == "primary"

    # Replying accepts a request as well.
    group = await threads.create_group(
        state, sessions, stranger.id, member_ids=[private.id, public.id], title="club"
    )
    assert await folder_of(state, sessions, private, group.id) == "requests"
    assert await folder_of(state, sessions, public, group.id) == "primary"
    await say(state, sessions, private, group.id, "who is this?")
    assert await folder_of(state, sessions, private, group.id) == "primary"


async def test_read_marks_and_unread_counts(state: AppState, sessions: ShardSessions) -> None:
    ana, bo = await new_user(state, sessions, "writer"), await new_user(state, sessions, "reader")
    thread = await threads.direct_thread(state, sessions, ana.id, bo.id)
    for text in ("one", "two", "three"):
        await say(state, sessions, ana, thread.id, text)
    # The sender has read their own messages.
    assert (await entry_of(state, sessions, ana, thread.id)).unread_count == 0
    assert (await entry_of(state, sessions, bo, thread.id)).unread_count == 3
    await messages.mark_read(state, sessions, bo.id, thread.id, seq=2)
    reader_entry = await entry_of(state, sessions, bo, thread.id)
    assert reader_entry.unread_count == 1
    assert reader_entry.read_marks[bo.id] == 2
    # A mark never goes back, and never past the last message.
    await messages.mark_read(state, sessions, bo.id, thread.id, seq=1)
    assert (await entry_of(state, sessions, bo, thread.id)).read_marks[bo.id] == 2
    with pytest.raises(BadUserInput):
        await messages.mark_read(state, sessions, bo.id, thread.id, seq=4)


async def test_in_a_group_a_blocked_members_messages_are_hidden_from_the_blocker(
    state: AppState, sessions: ShardSessions
) -> None:
    host = await new_user(state, sessions, "convenor")
    troll, calm = await new_user(state, sessions, "troll"), await new_user(state, sessions, "calm")
    group = await threads.create_group(
        state, sessions, host.id, member_ids=[troll.id, calm.id], title=None
    )
    await say(state, sessions, calm, group.id, "hello all")
    troll_seq = await say(state, sessions, troll, group.id, "spam")
    await blocks.block(state, sessions, host.id, troll.id)

    assert await bodies(state, sessions, host, group.id) == ["hello all"]
    host_entry = await entry_of(state, sessions, host, group.id)
    # The inbox previews no hidden message (it leaves the preview out rather than show
    # an older one), nor counts it as unread.
    assert host_entry.last_message is None or host_entry.last_message.sender_id != troll.id
    assert host_entry.unread_count == 1
    calm_entry = await entry_of(state, sessions, calm, group.id)
    assert calm_entry.last_message is not None
    assert calm_entry.last_message.body == "spam"
    with pytest.raises(NotFound):
        await messages.react(state, sessions, host.id, group.id, seq=troll_seq, emoji="👎")
    # The others still read everything.
    assert await bodies(state, sessions, calm, group.id) == ["hello all", "spam"]
    # The troll's reply after the block is hidden from the host alone as well.
    await say(state, sessions, troll, group.id, "more spam")
    assert await bodies(state, sessions, host, group.id) == ["hello all"]
    assert (await entry_of(state, sessions, host, group.id)).unread_count == 1


async def test_what_a_message_may_carry(state: AppState, sessions: ShardSessions) -> None:
    sender = await new_user(state, sessions, "sender")
    receiver = await new_user(state, sessions, "receiver")
    private = await new_user(state, sessions, "secretive", private=True)
    hidden_post = await new_post(state, sessions, private, "followers only")
    for content in (
        MessageContent(text="x" * (messages.MAX_MESSAGE_LENGTH + 1)),
        MessageContent(text="   "),
    ):
        with pytest.raises(BadUserInput):
            await messages.send_to_user(state, sessions, sender.id, receiver.id, content)
    with pytest.raises(NotFound):
        await messages.send_to_user(
            state, sessions, sender.id, receiver.id, MessageContent(post_id=hidden_post.id)
        )
    # Refused messages left no thread in either inbox.
    for user in (sender, receiver):
        page, _ = await inbox.inbox(
            state, sessions, user.id, folder="primary", before_activity=None, limit=10
        )
        assert page == []

    # Media: the sender's own, processed and not published elsewhere; sending publishes it.
    theirs = await ready_media(state, sessions, receiver, seed=1)
    with pytest.raises(NotFound):
        await messages.send_to_user(
            state, sessions, sender.id, receiver.id, MessageContent(media_id=theirs.id)
        )
    mine = await ready_media(state, sessions, sender, seed=2)
    sent = await messages.send_to_user(
        state, sessions, sender.id, receiver.id, MessageContent(media_id=mine.id)
    )
    assert sent.kind == "media"
    (published,) = await load_media(state, sessions, [mine.id])
    assert published is not None
    assert published.attached_to == sent.id
    with pytest.raises(MediaNotReady):
        await messages.send_message(
            state, sessions, sender.id, sent.thread_id, MessageContent(media_id=mine.id)
        )
