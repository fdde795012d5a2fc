"""Messaging in the authorization audit: threads, messages, reactions and read marks. The
probe: every thread operation by outsiders and former members, and members across a
block."""

from __future__ import annotations

from tests.authorization.audit import (
    BLOCKED_EITHER_WAY,
    GUARDED,
    LIVE,
    MUTATIONS,
    OWNER,
    PAGE_INFO,
    PUBLIC,
    SIGNED_IN,
    UNAUTHORIZED,
    USERNAMES,
    Audit,
    Classified,
    World,
    classify,
    classify_connection,
)

THREADS = "test_threads_and_messages"


AUDIT: list[Classified] = [
    *classify(OWNER, THREADS, "Query", "inbox thread messages"),
    *classify(OWNER, LIVE, "Subscription", "messageEvents"),
    *classify(
        GUARDED,
        THREADS,
        "Mutation",
        "startThread sendMessage markThreadRead reactToMessage sendTypingIndicator "
        "addThreadMembers removeThreadMember acceptMessageRequest",
    ),
    *classify(GUARDED, MUTATIONS, "Mutation", "replyToStory"),
    # Payloads: their objects are the visible ones the mutation acted on.
    *classify(GUARDED, THREADS, "MessagePayload", "message"),
    *classify(GUARDED, THREADS, "ThreadPayload", "thread"),
    # Threads and messages: members only; a block hides the other side's messages.
    *classify(OWNER, THREADS, "Thread", "id isGroup title lastSeq lastMessageAt unreadCount"),
    *classify(GUARDED, THREADS, "Thread", "members lastMessage readMarks"),
    *classify_connection("ThreadConnection", THREADS),
    *classify(PUBLIC, THREADS, "Message", "id seq threadId kind text createdAt"),
    *classify(GUARDED, THREADS, "Message", "sender post story media reactions"),
    *classify_connection("MessageConnection", THREADS),
    *classify(PUBLIC, THREADS, "Reaction", "emoji"),
    *classify(GUARDED, THREADS, "Reaction", "user"),
    *classify(PUBLIC, THREADS, "ReadMark", "seq"),
    *classify(GUARDED, THREADS, "ReadMark", "user"),
    *classify(OWNER, LIVE, "MessageEvent", "kind threadId seq emoji"),
    *classify(GUARDED, LIVE, "MessageEvent", "message user"),
]


MESSAGE_FIELDS = """
fragment Msg on Message {
  id seq threadId kind text createdAt sender { id username } post { id caption }
  story { id } media { id url } reactions { emoji user { id username } }
}
"""
THREAD_FIELDS = (
    MESSAGE_FIELDS
    + """
fragment T on Thread {
  id isGroup title lastSeq lastMessageAt unreadCount members { id username }
  lastMessage { ...Msg } readMarks { seq user { id username } }
}
"""
)


async def test_threads_and_messages(world: World) -> None:
    audit = Audit(world)
    group = world.ids["group"]
    documents = {
        "thread": THREAD_FIELDS + "query($t: ID!) { thread(id: $t) { ...T } }",
        "messages": MESSAGE_FIELDS
        + f"query($t: ID!) {{ messages(threadId: $t, last: 10) {{ {PAGE_INFO} "
        "edges { cursor node { ...Msg } } } }",
        "markThreadRead": THREAD_FIELDS
        + "mutation($t: ID!) { markThreadRead(threadId: $t, seq: 1) { ...T } }",
        "reactToMessage": MESSAGE_FIELDS
        + 'mutation($t: ID!) { reactToMessage(threadId: $t, seq: 1, emoji: "👀") { message { ...Msg } } }',
        "sendMessage": MESSAGE_FIELDS
        + 'mutation($t: ID!) { sendMessage(input: {threadId: $t, text: "let me in"}) '
        "{ message { ...Msg } } }",
        "sendTypingIndicator": "mutation($t: ID!) { sendTypingIndicator(threadId: $t) }",
        "addThreadMembers": THREAD_FIELDS + "mutation($t: ID!) { addThreadMembers(threadId: $t, "
        f'userIds: ["{world.accounts["pal"].id}"]) {{ thread {{ ...T }} }} }}',
        "acceptMessageRequest": THREAD_FIELDS
        + "mutation($t: ID!) { acceptMessageRequest(threadId: $t) { ...T } }",
        "removeThreadMember": "mutation($t: ID!) { removeThreadMember(threadId: $t, "
        f'userId: "{world.accounts["insider"].id}") }}',
    }
    # Outsiders of a thread, the former member included, get nothing of it.
    for viewer in UNAUTHORIZED:
        for thread_key in ("group", "direct"):
            thread_id = world.ids[thread_key]
            if viewer in BLOCKED_EITHER_WAY and thread_key == "group":
                continue  # still members: below
            for name, document in documents.items():
                path = f"{name}({thread_key})"
                like = await audit.ghost(viewer, f"{path} ", document, {"t": thread_id}, key="t")
                answer = await audit.ask(viewer, path, document, {"t": thread_id})
                audit.refused(viewer, path, answer, like=like)
        if viewer in SIGNED_IN:
            inbox = await audit.ask(
                viewer,
                "inbox",
                THREAD_FIELDS
                + f"{{ primary: inbox(first: 3) {{ {PAGE_INFO} edges {{ cursor node {{ ...T }} }} }} "
                f"requests: inbox(folder: REQUESTS, first: 3) {{ {PAGE_INFO} nodes {{ id }} }} }}",
            )
            if not inbox.data:
                audit.leak(viewer, "inbox", f"no answer: {inbox.text[:400]}")
                continue
            threads = [edge["node"]["id"] for edge in inbox.data["primary"]["edges"]]
            expected = [group] if viewer in BLOCKED_EITHER_WAY else []
            if threads != expected:
                audit.leak(viewer, "inbox", f"threads {threads}, expected {expected}")
    # Members across a block: the thread is theirs, the owner's messages are not.
    for viewer in BLOCKED_EITHER_WAY:
        thread = await audit.ask(viewer, "thread(group)", documents["thread"], {"t": group})
        summary = thread.data["thread"]
        # Unread, from others: the insider's two messages; the owner's two are hidden.
        if summary["unreadCount"] != 2:
            audit.leak(
                viewer,
                "thread(group).unreadCount",
                f"{summary['unreadCount']}, 2 visible",
                kind="unread count",
            )
        inbox = await audit.ask(
            viewer, "inbox(unread)", "{ inbox(first: 10) { nodes { id unreadCount } } }"
        )
        for node in inbox.data["inbox"]["nodes"]:
            if node["unreadCount"] != 2:
                audit.leak(
                    viewer,
                    "inbox.unreadCount",
                    f"{node['unreadCount']}, 2 visible",
                    kind="unread count",
                )
        messages = await audit.ask(viewer, "messages(group)", documents["messages"], {"t": group})
        assert messages.data, messages.text
        senders = {
            edge["node"]["sender"]["username"] if edge["node"]["sender"] else None
            for edge in messages.data["messages"]["edges"]
        }
        if senders != {USERNAMES["insider"]}:
            audit.leak(viewer, "messages(group)", f"senders {senders}")
        reaction = await audit.ask(
            viewer, "reactToMessage(owner's)", documents["reactToMessage"], {"t": group}
        )
        audit.refused(viewer, "reactToMessage(owner's)", reaction, codes={"NOT_FOUND"})
        # Last, since it moves their read mark: the payload is the thread as they see it.
        await audit.ask(
            viewer,
            "markThreadRead(group)",
            THREAD_FIELDS + "mutation($t: ID!) { markThreadRead(threadId: $t, seq: 4) { ...T } }",
            {"t": group},
        )
    # A refused reaction was not stored: the insider sees no reaction of theirs.
    insider = world.accounts["insider"]
    seen = (
        await world.gql(
            "query($t: ID!) { messages(threadId: $t, first: 10) "
            "{ nodes { seq reactions { emoji user { username } } } } }",
            {"t": group},
            token=insider.token,
        )
    ).ok()["messages"]["nodes"]
    strangers = {
        reaction["user"]["username"]
        for message in seen
        for reaction in message["reactions"]
        if reaction["user"] is not None
    } - {USERNAMES["insider"]}
    if strangers:
        audit.leak("insider", "reactions", f"refused reactions were stored: {strangers}")
    audit.assert_none()
