"""Notification queries, mark-as-read and the ``notificationEvents`` subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from domain import realtime
from domain.errors import BadUserInput, Unauthenticated
from domain.notifications import notifications
from domain.realtime import EventKind
from graphql_api.context import Info, SignedIn
from graphql_api.messaging.schema import SESSION_ENDED, ended, seq_cursor
from graphql_api.notifications.types import (
    Notification,
    NotificationEvent,
    notification_connection,
)
from graphql_api.relay import Connection, page_size


@strawberry.type
class NotificationQueries:
    @strawberry.field(
        description="Your notifications in the order they last changed, oldest first. "
        "The latest with last/before; catch up with first/after (after: the last cursor "
        "you saw), which returns each changed notification once.",
        permission_classes=[SignedIn],
    )
    async def notifications(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Notification]:
        ctx = info.context
        after_revision = seq_cursor(after, field="after")
        before_revision = seq_cursor(before, field="before")
        if after_revision is not None and (last is not None or before_revision is not None):
            raise BadUserInput("Page forward (first/after) or back (last/before)", field="after")
        forward = after_revision is not None or (first is not None and last is None)
        limit = page_size(first if forward else last)
        rows, more = await notifications.notifications_page(
            ctx.sessions,
            ctx.signed_in_id,
            after_revision=(after_revision or 0) if forward else None,
            before_revision=before_revision,
            limit=limit,
        )
        if forward:
            return notification_connection(rows, more_after=more, more_before=bool(after_revision))
        return notification_connection(
            rows, more_after=before_revision is not None, more_before=more
        )

    @strawberry.field(description="How many are unread.", permission_classes=[SignedIn])
    async def notifications_unread_count(self, info: Info) -> int:
        ctx = info.context
        return await notifications.unread_count(ctx.sessions, ctx.signed_in_id)


@strawberry.type
class NotificationMutations:
    @strawberry.mutation(
        description="Mark your notifications read, all of them or up to a cursor. Returns "
        "how many were unread.",
        permission_classes=[SignedIn],
    )
    async def mark_notifications_read(self, info: Info, up_to: str | None = None) -> int:
        ctx = info.context
        return await notifications.mark_read(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            up_to_revision=seq_cursor(up_to, field="upTo"),
        )


@strawberry.type
class NotificationSubscriptions:
    @strawberry.subscription(
        description="Your notifications as they are raised or updated. At most once: after "
        "a GAP, or a reconnect, catch up with notifications(after:).",
        permission_classes=[SignedIn],
    )
    async def notification_events(self, info: Info) -> AsyncGenerator[NotificationEvent, None]:
        ctx = info.context
        async for event in realtime.events_for(ctx.state, ctx.signed_in_id):
            if ended(ctx, event):
                raise Unauthenticated(SESSION_ENDED)
            if event.kind not in (EventKind.NOTIFICATION, EventKind.GAP):
                continue
            ctx.begin_operation()  # fresh loaders: nothing cached on the socket goes stale
            found = []
            if event.notification_id is not None:
                found = await notifications.load_notifications(
                    ctx.sessions, ctx.signed_in_id, [event.notification_id]
                )
            unread = await notifications.unread_count(ctx.sessions, ctx.signed_in_id)
            yield NotificationEvent(event=event, row=found[0] if found else None, unread=unread)
