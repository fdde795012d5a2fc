"""Notification rules, called on the domain directly (domain/notifications/): raised by
other features' events for their recipients only, folded into one unread group per
subject, each event counted once, never for one's own action or across a block, and
mentions only to people who may see the post; read marks close a group; the actors a
recipient is shown are those the policy lets them see."""

from __future__ import annotations

from db.accounts.records import UserRecord as User
from db.notifications.records import NotificationRecord as Notification
from db.session import ShardSessions
from domain.accounts import blocks, graph
from domain.messaging import messages
from domain.messaging.messages import MessageContent
from domain.notifications import notifications
from domain.notifications.notifications import NotificationKind
from domain.posts import comments, likes
from domain.state import AppState
from domain.visibility import direct
from tests.domain.support import follow_approved, new_post, new_user, unique_name


async def groups_of(state: AppState, sessions: ShardSessions, user: User) -> list[Notification]:
    """The user's notification groups, oldest change first."""
    page, _ = await notifications.notifications_page(
        sessions, user.id, after_revision=None, before_revision=None, limit=50
    )
    return page


async def like(state: AppState, sessions: ShardSessions, user: User, post_id: int) -> None:
    await likes.set_post_like(state, sessions, user.id, post_id, liked=True)


async def test_likes_fold_into_one_group_for_the_author_alone(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "author")
    ana, bo = await new_user(state, sessions, "ana"), await new_user(state, sessions, "bo")
    post = await new_post(state, sessions, author)
    await like(state, sessions, ana, post.id)
    await like(state, sessions, bo, post.id)
    # Unliked and liked again: the same event for the author, counted once.
    await likes.set_post_like(state, sessions, ana.id, post.id, liked=False)
    await like(state, sessions, ana, post.id)
    # The author's own like tells nobody anything.
    await like(state, sessions, author, post.id)

    (group,) = await groups_of(state, sessions, author)
    assert (group.kind, group.post_id, group.actor_count) == ("like", post.id, 2)
    assert group.latest_actor_ids == [bo.id, ana.id]
    assert await notifications.unread_count(sessions, author.id) == 1
    for actor in (ana, bo):
        assert await groups_of(state, sessions, actor) == []
    assert (
        notifications.describe(group.kind, [bo.username, ana.username], group.actor_count)
        == f"{bo.username} and {ana.username} liked your post"
    )


async def test_a_read_group_stays_closed_and_the_next_event_opens_another(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "reader")
    fans = [await new_user(state, sessions, f"fan{n}") for n in range(3)]
    post = await new_post(state, sessions, author)
    await like(state, sessions, fans[0], post.id)
    await like(state, sessions, fans[1], post.id)
    (first,) = await groups_of(state, sessions, author)
    assert await notifications.mark_read(state, sessions, author.id, up_to_revision=None) == 1
    assert await notifications.unread_count(sessions, author.id) == 0

    await like(state, sessions, fans[2], post.id)
    older, newer = await groups_of(state, sessions, author)
    assert older.id == first.id
    assert (older.actor_count, older.read_at is not None) == (2, True)
    assert (newer.actor_count, newer.read_at) == (1, None)
    assert newer.latest_actor_ids == [fans[2].id]
    assert await notifications.unread_count(sessions, author.id) == 1
    # Catching up from the first group's revision finds only the new one.
    caught_up, more = await notifications.notifications_page(
        sessions, author.id, after_revision=older.revision, before_revision=None, limit=10
    )
    assert ([row.id for row in caught_up], more) == ([newer.id], False)
    # Read up to a revision leaves what changed after it unread.
    assert (
        await notifications.mark_read(state, sessions, author.id, up_to_revision=older.revision)
        == 0
    )
    assert await notifications.unread_count(sessions, author.id) == 1


async def test_no_notification_across_a_block_and_hidden_actors_stay_hidden(
    state: AppState, sessions: ShardSessions
) -> None:
    recipient = await new_user(state, sessions, "recipient")
    blocked = await new_user(state, sessions, "pest")
    fan = await new_user(state, sessions, "admirer")
    await blocks.block(state, sessions, recipient.id, blocked.id)
    for actor, recipient_id in ((blocked, recipient.id), (recipient, blocked.id)):
        raised = await notifications.notify(
            state,
            sessions,
            recipient_id=recipient_id,
            actor_id=actor.id,
            kind=NotificationKind.FOLLOW,
            group_key="follow",
            event_key=f"follow:{actor.id}",
        )
        assert raised is None
    assert await groups_of(state, sessions, recipient) == []

    # A block after the event: the group keeps its count, but the recipient is shown
    # only the actors the policy lets them see.
    post = await new_post(state, sessions, recipient)
    await like(state, sessions, fan, post.id)
    await blocks.block(state, sessions, recipient.id, fan.id)
    (group,) = await groups_of(state, sessions, recipient)
    assert group.actor_count == 1
    assert await direct(state, sessions, recipient.id).users(group.latest_actor_ids) == [None]


async def test_each_event_is_counted_once(state: AppState, sessions: ShardSessions) -> None:
    recipient = await new_user(state, sessions, "target")
    actor = await new_user(state, sessions, "actor")

    async def mention() -> Notification | None:
        return await notifications.notify(
            state,
            sessions,
            recipient_id=recipient.id,
            actor_id=actor.id,
            kind=NotificationKind.MENTION,
            group_key="mention:post:1",
            event_key="mention:post:1",
        )

    assert await mention() is not None
    # A delivery run twice (a retried job) changes nothing.
    assert await mention() is None
    (group,) = await groups_of(state, sessions, recipient)
    assert group.actor_count == 1


async def test_mentions_reach_only_those_who_may_see_the_post(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "closed", private=True)
    follower = await new_user(state, sessions, "follower")
    outsider = await new_user(state, sessions, "outsider")
    await follow_approved(state, sessions, follower, author)
    follow_groups = [
        (group.id, group.revision) for group in await groups_of(state, sessions, author)
    ]
    post = await new_post(
        state,
        sessions,
        author,
        f"hi @{follower.username} @{outsider.username} @{author.username} "
        f"@{unique_name('nobody')} @{follower.username.upper()}",
    )
    (mention,) = await groups_of(state, sessions, follower)
    assert (mention.kind, mention.post_id, mention.latest_actor_ids) == (
        "mention",
        post.id,
        [author.id],
    )
    assert await groups_of(state, sessions, outsider) == []
    assert [
        (group.id, group.revision) for group in await groups_of(state, sessions, author)
    ] == follow_groups, "no mention of oneself"

    # In a comment as well: the post's author hears of the comment, the follower of the
    # mention, once each.
    await comments.add_comment(
        state, sessions, follower.id, post.id, body=f"@{outsider.username} look", reply_to=None
    )
    assert await groups_of(state, sessions, outsider) == []
    kinds = [group.kind for group in await groups_of(state, sessions, author)]
    assert kinds.count("comment") == 1


async def test_follows_requests_and_messages_notify_their_recipient(
    state: AppState, sessions: ShardSessions
) -> None:
    public = await new_user(state, sessions, "open")
    private = await new_user(state, sessions, "shut", private=True)
    fan = await new_user(state, sessions, "keen")
    await graph.follow(state, sessions, fan.id, public.id)
    await graph.follow(state, sessions, fan.id, private.id)
    assert [group.kind for group in await groups_of(state, sessions, public)] == ["follow"]
    assert [group.kind for group in await groups_of(state, sessions, private)] == ["follow_request"]

    # Messages fold per thread: two messages from one sender are one unread group.
    for text in ("hi", "there"):
        sent = await messages.send_to_user(
            state, sessions, fan.id, public.id, MessageContent(text=text)
        )
    _, message = await groups_of(state, sessions, public)
    assert (message.kind, message.thread_id, message.actor_count) == (
        "message",
        sent.thread_id,
        1,
    )
    assert [group.kind for group in await groups_of(state, sessions, fan)] == []


def test_descriptions_name_up_to_two_actors() -> None:
    assert notifications.describe("follow", ["ana"], 1) == "ana started following you"
    assert (
        notifications.describe("comment", ["ana", "bo"], 2) == "ana and bo commented on your post"
    )
    assert notifications.describe("like", ["ana", "bo"], 4) == "ana and 3 others liked your post"
    # Actors the recipient may not see are not named.
    assert notifications.describe("like", [], 1) == "Someone liked your post"
    assert notifications.describe("like", [], 3) == "3 people liked your post"
