"""Notification queries, mark-as-read and the ``notificationEvents`` subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from db.notifications.records import NotificationRecord
from domain.notifications import notifications
from domain.realtime import EventKind, LiveEvent
from graphql_api.context import Info, SignedIn
from graphql_api.live import live_events
from graphql_api.notifications.types import (
    Notification,
    NotificationEvent,
)
from graphql_api.relay import Connection, TwoWayPage, position_cursor


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
        page = TwoWayPage.of(first=first, after=after, last=last, before=before)
        rows, more = await notifications.notifications_page(
            ctx.sessions,
            ctx.signed_in_id,
            after_revision=page.start,
            before_revision=page.before,
            limit=page.limit,
        )
        return page.connection(
            rows,
            more=more,
            node_of=lambda row: Notification(row=row),
            position_of=lambda row: row.revision,
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
            up_to_revision=position_cursor(up_to, field="upTo"),
        )


@strawberry.type
class NotificationSubscriptions:
    @strawberry.subscription(
        description="Your notifications as they are raised or updated. The first event is a "
        "GAP, with your unread count, sent once you are live: catch up then with "
        "notifications(after:), and again after any later GAP. At most once.",
        permission_classes=[SignedIn],
    )
    async def notification_events(self, info: Info) -> AsyncGenerator[NotificationEvent, None]:
        ctx = info.context

        def wanted(event: LiveEvent) -> bool:
            return event.kind in (EventKind.NOTIFICATION, EventKind.GAP)

        async for event in live_events(ctx, wanted=wanted):
            found: list[NotificationRecord] = []
            if event.notification_id is not None:
                found = await notifications.load_notifications(
                    ctx.sessions, ctx.signed_in_id, [event.notification_id]
                )
            unread = await notifications.unread_count(ctx.sessions, ctx.signed_in_id)
            row = found[0] if found else None
            yield NotificationEvent(event=event, row=row, unread=unread)
