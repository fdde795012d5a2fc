"""Threads, messages and their live events as GraphQL types."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from db.messaging.records import MessageRecord
from domain.messaging.inbox import InboxThread
from domain.realtime import EventKind, LiveEvent
from graphql_api.accounts.types import User, visible_user, visible_users
from graphql_api.context import Info
from graphql_api.loader import Loaded, then
from graphql_api.media.types import Media, first_media, media_of
from graphql_api.messaging.loaders import MessagingLoaders
from graphql_api.posts.types import Post
from graphql_api.relay import to_global_id
from graphql_api.stories.types import Story


@strawberry.enum
class MessageKind(enum.Enum):
    TEXT = "text"
    POST = "post"
    MEDIA = "media"
    STORY_REPLY = "story_reply"


@strawberry.type(description="A member's reaction to a message.")
class Reaction:
    emoji: str
    user_id: strawberry.Private[int]

    @strawberry.field(graphql_type=User | None)
    def user(self, info: Info) -> Loaded[User | None]:
        return visible_user(info, self.user_id)


@strawberry.type(description="A direct message. `seq` orders a thread and is its cursor.")
class Message:
    row: strawberry.Private[MessageRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Message", self.row.id)

    @strawberry.field(description="Strictly increasing within the thread, from 1.")
    def seq(self) -> int:
        return self.row.seq

    @strawberry.field
    def thread_id(self) -> strawberry.ID:
        return to_global_id("Thread", self.row.thread_id)

    @strawberry.field
    def kind(self) -> MessageKind:
        return MessageKind(self.row.kind)

    @strawberry.field
    def text(self) -> str | None:
        return self.row.body

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field(graphql_type=User | None)
    def sender(self, info: Info) -> Loaded[User | None]:
        return visible_user(info, self.row.sender_id)

    @strawberry.field(description="The shared post, while you may see it.")
    async def post(self, info: Info) -> Post | None:
        if self.row.post_id is None:
            return None
        row = await info.context.loaders.visibility.post(self.row.post_id)
        return Post(row=row) if row is not None else None

    @strawberry.field(description="The story replied to, while it is live and visible.")
    async def story(self, info: Info) -> Story | None:
        if self.row.story_id is None:
            return None
        (row,) = await info.context.loaders.visibility.stories([self.row.story_id])
        return Story(row=row) if row is not None else None

    @strawberry.field(graphql_type=Media | None)
    def media(self, info: Info) -> Loaded[Media | None]:
        if self.row.media_id is None:
            return None
        # Shared privately: always through signed, expiring URLs.
        return then(media_of(info, [self.row.media_id], owner=None, in_message=True), first_media)

    @strawberry.field
    async def reactions(self, info: Info) -> list[Reaction]:
        pairs = await info.context.loaders.of(MessagingLoaders).reactions.load(self.row)
        visible = set(await info.context.loaders.visibility.unblocked([u for u, _ in pairs]))
        return [Reaction(emoji=emoji, user_id=u) for u, emoji in pairs if u in visible]


@strawberry.type(description="Where a member has read up to.")
class ReadMark:
    seq: int
    user_id: strawberry.Private[int]

    @strawberry.field(graphql_type=User | None)
    def user(self, info: Info) -> Loaded[User | None]:
        return visible_user(info, self.user_id)


@strawberry.type(description="A conversation: one-to-one, or a group of up to 32.")
class Thread:
    summary: strawberry.Private[InboxThread]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Thread", self.summary.thread.id)

    @strawberry.field
    def is_group(self) -> bool:
        return self.summary.thread.kind == "group"

    @strawberry.field
    def title(self) -> str | None:
        return self.summary.thread.title

    @strawberry.field(description="The latest message's seq (0 before the first).")
    def last_seq(self) -> int:
        return self.summary.thread.last_seq

    @strawberry.field
    def last_message_at(self) -> datetime | None:
        return self.summary.thread.last_message_at

    @strawberry.field(description="Messages from others you have not read.")
    def unread_count(self) -> int:
        return self.summary.unread_count

    @strawberry.field
    async def members(self, info: Info) -> list[User]:
        return await visible_users(info, self.summary.member_ids)

    @strawberry.field
    def last_message(self) -> Message | None:
        last = self.summary.last_message
        return Message(row=last) if last is not None else None

    @strawberry.field(description="How far each member has read.")
    def read_marks(self) -> list[ReadMark]:
        return [ReadMark(seq=seq, user_id=u) for u, seq in self.summary.read_marks.items()]


@strawberry.enum
class MessageEventKind(enum.Enum):
    MESSAGE = "message"
    READ = "read"
    REACTION = "reaction"
    TYPING = "typing"
    THREAD_UPDATED = "thread_updated"
    REMOVED_FROM_THREAD = "removed_from_thread"
    GAP = "gap"


MESSAGE_EVENT_KINDS = {kind.value for kind in MessageEventKind}


@strawberry.type(
    description="Something that happened in one of your threads. GAP: events may have been "
    "missed; catch up with messages(threadId, after: <the last seq you saw>)."
)
class MessageEvent:
    event: strawberry.Private[LiveEvent]

    @strawberry.field
    def kind(self) -> MessageEventKind:
        return MessageEventKind(self.event.kind.value)

    @strawberry.field
    def thread_id(self) -> strawberry.ID | None:
        thread_id = self.event.thread_id
        return to_global_id("Thread", thread_id) if thread_id is not None else None

    @strawberry.field
    def seq(self) -> int | None:
        return self.event.seq

    @strawberry.field
    def message(self) -> Message | None:
        return Message(row=self.event.message) if self.event.message is not None else None

    @strawberry.field(
        graphql_type=User | None, description="Who read, reacted, typed or changed the members."
    )
    def user(self, info: Info) -> Loaded[User | None]:
        if self.event.kind is EventKind.MESSAGE and self.event.message is not None:
            return visible_user(info, self.event.message.sender_id)
        if self.event.user_id is None:
            return None
        return visible_user(info, self.event.user_id)

    @strawberry.field(description="The reaction set; null when one was removed.")
    def emoji(self) -> str | None:
        return self.event.emoji
