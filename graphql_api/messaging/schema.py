"""Direct-message queries, mutations and the ``messageEvents`` subscription."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator

import strawberry

from domain.errors import BadUserInput, NotFound
from domain.messaging import inbox, messages, threads
from domain.messaging.inbox import thread_summaries
from domain.messaging.messages import MessageContent
from domain.realtime import LiveEvent
from graphql_api.context import Info, SignedIn
from graphql_api.ids import media_id_from, post_id_from, story_id_from, thread_id_from, user_id_from
from graphql_api.live import live_events
from graphql_api.messaging.types import (
    MESSAGE_EVENT_KINDS,
    Message,
    MessageEvent,
    Thread,
)
from graphql_api.relay import (
    Connection,
    TwoWayPage,
    build_connection,
    decode_cursor,
    encode_cursor,
    page_size,
)


async def thread_of(info: Info, thread_id: int) -> Thread:
    ctx = info.context
    found = await thread_summaries(ctx.state, ctx.sessions, ctx.signed_in_id, [thread_id])
    if thread_id not in found:
        raise NotFound("No such thread")
    return Thread(summary=found[thread_id])


@strawberry.enum
class InboxFolder(enum.Enum):
    PRIMARY = "primary"
    REQUESTS = "requests"


@strawberry.input
class StartThreadInput:
    user_ids: list[strawberry.ID] = strawberry.field(
        description="One person for a one-to-one thread (found if it exists), or up to 31."
    )
    title: str | None = None


@strawberry.input
class SendMessageInput:
    thread_id: strawberry.ID | None = strawberry.field(
        default=None, description="The thread; or give userId for your one-to-one thread."
    )
    user_id: strawberry.ID | None = None
    text: str | None = None
    post_id: strawberry.ID | None = strawberry.field(default=None, description="Share a post.")
    media_id: strawberry.ID | None = strawberry.field(
        default=None, description="A processed upload of yours."
    )


@strawberry.type
class ThreadPayload:
    thread: Thread


@strawberry.type
class MessagePayload:
    message: Message


@strawberry.type
class MessagingQueries:
    @strawberry.field(
        description="Your threads by last activity, with unread counts. REQUESTS holds "
        "threads from accounts you do not follow, if yours is private.",
        permission_classes=[SignedIn],
    )
    async def inbox(
        self,
        info: Info,
        folder: InboxFolder = InboxFolder.PRIMARY,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Thread]:
        ctx = info.context
        limit = page_size(first)
        page, more = await inbox.inbox(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            folder=folder.value,
            before_activity=decode_cursor(after),
            limit=limit,
        )
        items = page + ([page[-1]] if more and page else [])
        return build_connection(
            items,
            limit=len(page),
            cursor_of=lambda item: item.activity_id,
            node_of=lambda item: Thread(summary=item),
            encode=encode_cursor,
        )

    @strawberry.field(description="One of your threads.", permission_classes=[SignedIn])
    async def thread(self, info: Info, id: strawberry.ID) -> Thread:
        thread_id = thread_id_from(id, field="id")
        ctx = info.context
        await threads.require_member(ctx.state, ctx.sessions, ctx.signed_in_id, thread_id)
        return await thread_of(info, thread_id)

    @strawberry.field(
        description="A thread's messages, oldest first. Catch up with first/after (after: "
        "the last seq you saw); read history back with last/before (the newest without "
        "before). Cursors are seqs.",
        permission_classes=[SignedIn],
    )
    async def messages(
        self,
        info: Info,
        thread_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Message]:
        ctx = info.context
        page = TwoWayPage.of(first=first, after=after, last=last, before=before)
        rows, more = await messages.thread_messages(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            thread_id_from(thread_id),
            after_seq=page.start,
            before_seq=page.before,
            limit=page.limit,
        )
        return page.connection(
            rows, more=more, node_of=lambda row: Message(row=row), position_of=lambda row: row.seq
        )


@strawberry.type
class MessagingMutations:
    @strawberry.mutation(
        description="Your one-to-one thread with someone (created on first use), or a new group.",
        permission_classes=[SignedIn],
    )
    async def start_thread(self, info: Info, input: StartThreadInput) -> ThreadPayload:
        ctx = info.context
        ids = [user_id_from(global_id) for global_id in input.user_ids]
        if len(ids) == 1 and input.title is None:
            record = await threads.direct_thread(ctx.state, ctx.sessions, ctx.signed_in_id, ids[0])
        else:
            record = await threads.create_group(
                ctx.state, ctx.sessions, ctx.signed_in_id, member_ids=ids, title=input.title
            )
        return ThreadPayload(thread=await thread_of(info, record.id))

    @strawberry.mutation(
        description="Send text, a post or media. Stored before anyone is told.",
        permission_classes=[SignedIn],
    )
    async def send_message(self, info: Info, input: SendMessageInput) -> MessagePayload:
        ctx = info.context
        if (input.thread_id is None) == (input.user_id is None):
            raise BadUserInput("Give threadId or userId", field="threadId")
        content = MessageContent(
            text=input.text,
            post_id=post_id_from(input.post_id) if input.post_id is not None else None,
            media_id=media_id_from(input.media_id) if input.media_id is not None else None,
        )
        if input.thread_id is not None:
            row = await messages.send_message(
                ctx.state, ctx.sessions, ctx.signed_in_id, thread_id_from(input.thread_id), content
            )
        else:
            assert input.user_id is not None
            row = await messages.send_to_user(
                ctx.state, ctx.sessions, ctx.signed_in_id, user_id_from(input.user_id), content
            )
        return MessagePayload(message=Message(row=row))

    @strawberry.mutation(
        description="Reply to a story: a message to its author.", permission_classes=[SignedIn]
    )
    async def reply_to_story(
        self, info: Info, story_id: strawberry.ID, text: str
    ) -> MessagePayload:
        ctx = info.context
        story = await ctx.loaders.visibility.require_story(story_id_from(story_id))
        thread = await threads.direct_thread(
            ctx.state, ctx.sessions, ctx.signed_in_id, story.author_id
        )
        row = await messages.send_message(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            thread.id,
            MessageContent(text=text, story_id=story.id),
        )
        return MessagePayload(message=Message(row=row))

    @strawberry.mutation(
        description="Mark a thread read up to a seq.", permission_classes=[SignedIn]
    )
    async def mark_thread_read(self, info: Info, thread_id: strawberry.ID, seq: int) -> Thread:
        ctx = info.context
        record = await messages.mark_read(
            ctx.state, ctx.sessions, ctx.signed_in_id, thread_id_from(thread_id), seq=seq
        )
        return await thread_of(info, record.id)

    @strawberry.mutation(
        description="React to a message; a null emoji removes your reaction.",
        permission_classes=[SignedIn],
    )
    async def react_to_message(
        self, info: Info, thread_id: strawberry.ID, seq: int, emoji: str | None
    ) -> MessagePayload:
        ctx = info.context
        row = await messages.react(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            thread_id_from(thread_id),
            seq=seq,
            emoji=emoji,
        )
        return MessagePayload(message=Message(row=row))

    @strawberry.mutation(
        description="Tell the thread you are typing (not stored; send every few seconds).",
        permission_classes=[SignedIn],
    )
    async def send_typing_indicator(self, info: Info, thread_id: strawberry.ID) -> bool:
        ctx = info.context
        await messages.typing(ctx.state, ctx.sessions, ctx.signed_in_id, thread_id_from(thread_id))
        return True

    @strawberry.mutation(description="Add people to a group.", permission_classes=[SignedIn])
    async def add_thread_members(
        self, info: Info, thread_id: strawberry.ID, user_ids: list[strawberry.ID]
    ) -> ThreadPayload:
        ctx = info.context
        record = await threads.change_members(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            thread_id_from(thread_id),
            add=[user_id_from(global_id) for global_id in user_ids],
        )
        return ThreadPayload(thread=await thread_of(info, record.id))

    @strawberry.mutation(
        description="Remove someone from a group you created, or yourself (leave).",
        permission_classes=[SignedIn],
    )
    async def remove_thread_member(
        self, info: Info, thread_id: strawberry.ID, user_id: strawberry.ID
    ) -> strawberry.ID:
        ctx = info.context
        await threads.change_members(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            thread_id_from(thread_id),
            remove=[user_id_from(user_id)],
        )
        return thread_id

    @strawberry.mutation(
        description="Move a message request to your primary inbox.",
        permission_classes=[SignedIn],
    )
    async def accept_message_request(self, info: Info, thread_id: strawberry.ID) -> Thread:
        ctx = info.context
        record = await threads.accept_request(
            ctx.state, ctx.sessions, ctx.signed_in_id, thread_id_from(thread_id)
        )
        return await thread_of(info, record.id)


@strawberry.type
class MessagingSubscriptions:
    @strawberry.subscription(
        description="New messages, reads, reactions, typing and member changes in your "
        "threads (or one thread). The first event is a GAP, sent once you are live: catch "
        "up then with messages(after:), and again after any later GAP. At most once.",
        permission_classes=[SignedIn],
    )
    async def message_events(
        self, info: Info, thread_id: strawberry.ID | None = None
    ) -> AsyncGenerator[MessageEvent, None]:
        ctx = info.context
        only = thread_id_from(thread_id) if thread_id is not None else None
        if only is not None:
            await threads.require_member(ctx.state, ctx.sessions, ctx.signed_in_id, only)

        def wanted(event: LiveEvent) -> bool:
            return event.kind.value in MESSAGE_EVENT_KINDS and (
                only is None or event.thread_id in (None, only)
            )

        async for event in live_events(ctx, wanted=wanted):
            yield MessageEvent(event=event)
