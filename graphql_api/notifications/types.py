"""Notifications as GraphQL types. A notification's cursor is its ``revision``: a fresh
id each time its group changes, so that catching up returns what changed, once."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from db.notifications.records import NotificationRecord as NotificationRow
from domain.notifications.notifications import NotificationKind as DomainKind
from domain.notifications.notifications import describe
from domain.realtime import EventKind, LiveEvent
from graphql_api.accounts.types import User, visible_users
from graphql_api.context import Info
from graphql_api.posts.types import Comment, Post
from graphql_api.relay import to_global_id


@strawberry.enum
class NotificationKind(enum.Enum):
    LIKE = DomainKind.LIKE.value
    COMMENT = DomainKind.COMMENT.value
    MENTION = DomainKind.MENTION.value
    FOLLOW = DomainKind.FOLLOW.value
    FOLLOW_REQUEST = DomainKind.FOLLOW_REQUEST.value
    MESSAGE = DomainKind.MESSAGE.value
    STORY_REPLY = DomainKind.STORY_REPLY.value


@strawberry.type(
    description="Something that happened to you; events of one kind about one thing are "
    'folded together while unread ("ana and 3 others liked your post").'
)
class Notification:
    row: strawberry.Private[NotificationRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Notification", self.row.id)

    @strawberry.field
    def kind(self) -> NotificationKind:
        return NotificationKind(self.row.kind)

    @strawberry.field(description="Distinct people folded into this notification.")
    def actor_count(self) -> int:
        return self.row.actor_count

    @strawberry.field(description="The latest few of them that you may see, newest first.")
    async def actors(self, info: Info) -> list[User]:
        return await visible_users(info, list(self.row.latest_actor_ids))

    @strawberry.field(description='For example "ana and 3 others liked your post".')
    async def text(self, info: Info) -> str:
        actors = await visible_users(info, list(self.row.latest_actor_ids))
        return describe(
            self.row.kind, [actor.row.username for actor in actors], self.row.actor_count
        )

    @strawberry.field
    async def post(self, info: Info) -> Post | None:
        if self.row.post_id is None:
            return None
        row = await info.context.loaders.visibility.post(self.row.post_id)
        return Post(row=row) if row is not None else None

    @strawberry.field
    async def comment(self, info: Info) -> Comment | None:
        if self.row.comment_id is None:
            return None
        row = await info.context.loaders.visibility.comment(self.row.comment_id)
        return Comment(row=row) if row is not None else None

    @strawberry.field(description="The thread, for messages and story replies.")
    def thread_id(self) -> strawberry.ID | None:
        thread_id = self.row.thread_id
        return to_global_id("Thread", thread_id) if thread_id is not None else None

    @strawberry.field
    def read(self) -> bool:
        return self.row.read_at is not None

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field(description="When the latest event was folded in.")
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @strawberry.field(description="Pass to notifications(after:) to catch up from here.")
    def cursor(self) -> str:
        return str(self.row.revision)


@strawberry.enum
class NotificationEventKind(enum.Enum):
    NOTIFICATION = "notification"
    GAP = "gap"


@strawberry.type(
    description="A notification raised or updated. GAP: some may have been missed; catch "
    "up with notifications(after: <the last cursor you saw>)."
)
class NotificationEvent:
    event: strawberry.Private[LiveEvent]
    row: strawberry.Private[NotificationRow | None]
    unread: strawberry.Private[int]

    @strawberry.field
    def kind(self) -> NotificationEventKind:
        if self.event.kind is EventKind.GAP:
            return NotificationEventKind.GAP
        return NotificationEventKind.NOTIFICATION

    @strawberry.field
    def notification(self) -> Notification | None:
        return Notification(row=self.row) if self.row is not None else None

    @strawberry.field(description="Your unread notifications, after this one.")
    def unread_count(self) -> int:
        return self.unread
