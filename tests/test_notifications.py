"""Notifications: one for each kind of event, raised after the event's commit, folded
together while unread, counted, marked read, caught up by cursor and pushed live; and
private accounts' message requests in their own inbox folder."""

from __future__ import annotations

from typing import Any

from domain.state import AppState
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up
from tests.test_realtime import listening, sent
from tests.test_stories_reels import post_story
from tests.ws_client import NOTIFICATION_EVENTS, open_socket

NOTIFICATIONS = """
query($first: Int, $after: String) {
  notificationsUnreadCount
  notifications(first: $first, after: $after) {
    edges { cursor node { kind actorCount text read actors { username } post { id } } }
  }
}
"""
LATEST = """
{ notifications(last: 20) { nodes { kind actorCount text read } } }
"""
LIKE = "mutation($p: ID!) { likePost(postId: $p) { post { id } } }"
COMMENT = "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) { comment { id } } }"
MARK_READ = "mutation($upTo: String) { markNotificationsRead(upTo: $upTo) }"
REPLY_TO_STORY = """
mutation($s: ID!, $t: String!) { replyToStory(storyId: $s, text: $t) { message { seq } } }
"""
INBOX = """
query($folder: InboxFolder!) {
  inbox(folder: $folder) { nodes { id unreadCount lastMessage { text } } }
}
"""
ACCEPT = "mutation($t: ID!) { acceptMessageRequest(threadId: $t) { id } }"


async def latest(gql: GraphQLClient, account: Account) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = (await gql(LATEST, token=account.token)).ok()["notifications"][
        "nodes"
    ]
    return nodes


async def newest(gql: GraphQLClient, account: Account) -> dict[str, Any]:
    return (await latest(gql, account))[-1]


async def unread(gql: GraphQLClient, account: Account) -> int:
    count: int = (await gql("{ notificationsUnreadCount }", token=account.token)).ok()[
        "notificationsUnreadCount"
    ]
    return count


async def test_each_kind_of_event_raises_its_notification(
    gql: GraphQLClient, state: AppState
) -> None:
    ana, ben = await sign_up(gql, "ana"), await sign_up(gql, "ben")
    post_id = await create_post(gql, ana, "sunset")

    await follow(gql, ben, ana)
    assert await newest(gql, ana) == {
        "kind": "FOLLOW",
        "actorCount": 1,
        "text": "ben started following you",
        "read": False,
    }
    (await gql(LIKE, {"p": post_id}, token=ben.token)).ok()
    assert (await newest(gql, ana))["text"] == "ben liked your post"
    (await gql(COMMENT, {"p": post_id, "b": "lovely"}, token=ben.token)).ok()
    assert (await newest(gql, ana))["kind"] == "COMMENT"
    assert "ben" in (await newest(gql, ana))["text"]
    await create_post(gql, ben, "with @ana at the beach")
    mention = await newest(gql, ana)
    assert mention["kind"] == "MENTION"
    assert "ben" in mention["text"]
    (await gql(COMMENT, {"p": post_id, "b": "@ana come back"}, token=ben.token)).ok()
    kinds = [node["kind"] for node in await latest(gql, ana)]
    assert kinds.count("MENTION") == 2

    await sent(gql, ben, "hey", to=ana)
    message = await newest(gql, ana)
    assert message["kind"] == "MESSAGE"
    assert "ben" in message["text"]

    story_id = await post_story(gql, state, ana, seed=3)
    (await gql(REPLY_TO_STORY, {"s": story_id, "t": "nice view"}, token=ben.token)).ok()
    reply = await newest(gql, ana)
    assert reply["kind"] == "STORY_REPLY"
    assert "ben" in reply["text"]

    shy = await sign_up(gql, "shy", private=True)
    requested = await gql(
        "mutation($u: ID!) { follow(userId: $u) { status } }", {"u": shy.id}, token=ben.token
    )
    assert requested.ok()["follow"]["status"] == "REQUESTED"
    request = await newest(gql, shy)
    assert request["kind"] == "FOLLOW_REQUEST"
    assert "ben" in request["text"]

    # Nobody is told about their own actions.
    (await gql(LIKE, {"p": post_id}, token=ana.token)).ok()
    assert [node["kind"] for node in await latest(gql, ben)] == []


async def test_likes_fold_into_one_notification_until_it_is_read(gql: GraphQLClient) -> None:
    ana = await sign_up(gql, "ana")
    post_id = await create_post(gql, ana, "sunset")
    fans = [await sign_up(gql, name) for name in ("ben", "cy", "dee", "eve")]
    for fan in fans:
        (await gql(LIKE, {"p": post_id}, token=fan.token)).ok()
    # A second like of the same post by the same person counts once.
    (
        await gql(
            "mutation($p: ID!) { unlikePost(postId: $p) { post { id } } }",
            {"p": post_id},
            token=fans[0].token,
        )
    ).ok()
    (await gql(LIKE, {"p": post_id}, token=fans[0].token)).ok()

    page = (await gql(NOTIFICATIONS, {"first": 20}, token=ana.token)).ok()
    (edge,) = page["notifications"]["edges"]
    assert edge["node"]["actorCount"] == 4
    assert edge["node"]["text"] == "eve and 3 others liked your post"
    assert [actor["username"] for actor in edge["node"]["actors"]] == ["eve", "dee", "cy"]
    assert edge["node"]["post"] == {"id": post_id}
    assert page["notificationsUnreadCount"] == 1

    assert (await gql(MARK_READ, token=ana.token)).ok()["markNotificationsRead"] == 1
    assert await unread(gql, ana) == 0
    assert (await newest(gql, ana))["read"] is True

    # Once read, the next like opens a new notification instead of reviving the old one.
    late = await sign_up(gql, "fay")
    (await gql(LIKE, {"p": post_id}, token=late.token)).ok()
    assert [(n["actorCount"], n["read"]) for n in await latest(gql, ana)] == [
        (4, True),
        (1, False),
    ]
    assert (await newest(gql, ana))["text"] == "fay liked your post"
    assert await unread(gql, ana) == 1


async def test_catching_up_after_a_cursor_returns_each_changed_notification_once(
    gql: GraphQLClient,
) -> None:
    ana = await sign_up(gql, "ana")
    first_post, second_post = await create_post(gql, ana, "one"), await create_post(gql, ana, "two")
    ben, cy = await sign_up(gql, "ben"), await sign_up(gql, "cy")
    (await gql(LIKE, {"p": first_post}, token=ben.token)).ok()
    (await gql(LIKE, {"p": second_post}, token=ben.token)).ok()
    page = (await gql(NOTIFICATIONS, {"first": 20}, token=ana.token)).ok()["notifications"]
    cursor = page["edges"][-1]["cursor"]
    assert len(page["edges"]) == 2

    # Nothing new: nothing to catch up on.
    caught_up = await gql(NOTIFICATIONS, {"first": 20, "after": cursor}, token=ana.token)
    assert caught_up.ok()["notifications"]["edges"] == []
    # cy's like changes the first post's notification: it comes back, once, updated,
    # after a follow that is new.
    (await gql(LIKE, {"p": first_post}, token=cy.token)).ok()
    await follow(gql, cy, ana)
    (await gql(LIKE, {"p": first_post}, token=cy.token)).ok()  # already counted
    changed = (await gql(NOTIFICATIONS, {"first": 20, "after": cursor}, token=ana.token)).ok()[
        "notifications"
    ]["edges"]
    assert [(e["node"]["kind"], e["node"]["actorCount"]) for e in changed] == [
        ("LIKE", 2),
        ("FOLLOW", 1),
    ]
    assert changed[0]["node"]["post"] == {"id": first_post}

    # Marking read up to a cursor leaves later ones unread.
    marked = await gql(MARK_READ, {"upTo": changed[0]["cursor"]}, token=ana.token)
    assert marked.ok()["markNotificationsRead"] == 2
    assert await unread(gql, ana) == 1

    bad = await gql(NOTIFICATIONS, {"first": 5, "after": "not-a-cursor"}, token=ana.token)
    assert bad.codes == ["BAD_USER_INPUT"]


async def test_blocked_accounts_raise_no_notifications(gql: GraphQLClient) -> None:
    ana, ben = await sign_up(gql, "ana"), await sign_up(gql, "ben")
    post_id = await create_post(gql, ana, "mine")
    (
        await gql(
            "mutation($u: ID!) { block(userId: $u) { blockedUserId } }",
            {"u": ana.id},
            token=ben.token,
        )
    ).ok()
    liked = await gql(LIKE, {"p": post_id}, token=ben.token)
    assert liked.codes  # ben can no longer see the post
    await create_post(gql, ben, "hello @ana")
    assert await latest(gql, ana) == []
    assert await unread(gql, ana) == 0


async def test_notifications_arrive_live_with_the_unread_count(
    gql: GraphQLClient, live_server_url: str
) -> None:
    ana, ben, cy = [await sign_up(gql, name) for name in ("ana", "ben", "cy")]
    post_id = await create_post(gql, ana, "live")
    async with open_socket(live_server_url, token=ana.token) as socket:
        await listening(socket, NOTIFICATION_EVENTS)
        (await gql(LIKE, {"p": post_id}, token=ben.token)).ok()
        first = (await socket.next_data())["data"]["notificationEvents"]
        assert first["kind"] == "NOTIFICATION"
        assert first["notification"]["text"] == "ben liked your post"
        assert first["unreadCount"] == 1
        (await gql(LIKE, {"p": post_id}, token=cy.token)).ok()
        second = (await socket.next_data())["data"]["notificationEvents"]
        assert second["notification"]["text"] == "cy and ben liked your post"
        assert second["notification"]["actorCount"] == 2
        assert second["unreadCount"] == 1
        await follow(gql, ben, ana)
        third = (await socket.next_data())["data"]["notificationEvents"]
        assert third["notification"]["kind"] == "FOLLOW"
        assert third["unreadCount"] == 2
        # Someone else's notifications never reach this socket.
        other_post = await create_post(gql, ben, "ben's")
        (await gql(LIKE, {"p": other_post}, token=cy.token)).ok()
        assert await socket.nothing_within(0.5)


async def test_a_private_accounts_messages_from_strangers_are_requests(
    gql: GraphQLClient,
) -> None:
    shy = await sign_up(gql, "shy", private=True)
    stranger, friend = await sign_up(gql, "stranger"), await sign_up(gql, "friend")
    await follow(gql, shy, friend)
    request = await sent(gql, stranger, "hi, we met at the gig", to=shy)
    await sent(gql, friend, "lunch?", to=shy)

    async def folder(name: str) -> list[str]:
        nodes = (await gql(INBOX, {"folder": name}, token=shy.token)).ok()["inbox"]["nodes"]
        return [node["lastMessage"]["text"] for node in nodes]

    assert await folder("PRIMARY") == ["lunch?"]
    assert await folder("REQUESTS") == ["hi, we met at the gig"]
    # The stranger's further messages stay in requests; the sender's own inbox is primary.
    await sent(gql, stranger, "it was fun", thread_id=request["threadId"])
    assert await folder("REQUESTS") == ["it was fun"]
    stranger_inbox = (await gql(INBOX, {"folder": "PRIMARY"}, token=stranger.token)).ok()
    assert [n["id"] for n in stranger_inbox["inbox"]["nodes"]] == [request["threadId"]]

    (await gql(ACCEPT, {"t": request["threadId"]}, token=shy.token)).ok()
    assert await folder("REQUESTS") == []
    assert await folder("PRIMARY") == ["it was fun", "lunch?"]
    # Only a thread's request recipient can accept it.
    refused = await gql(ACCEPT, {"t": request["threadId"]}, token=friend.token)
    assert refused.codes
    assert refused.codes[0] in ("NOT_FOUND", "FORBIDDEN")
