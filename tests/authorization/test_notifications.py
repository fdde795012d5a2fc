"""Notifications in the authorization audit. The probe: after losing access, nothing the
owner does reaches a viewer's notifications."""

from __future__ import annotations

from tests.authorization.audit import (
    GUARDED,
    LIVE,
    NOTIFICATIONS_DOCUMENT,
    OWNER,
    SIGNED_IN,
    UNAUTHORIZED,
    Audit,
    Classified,
    World,
    classify,
    classify_connection,
)

NOTIFICATIONS = "test_notifications_say_nothing_new"


AUDIT: list[Classified] = [
    *classify(OWNER, NOTIFICATIONS, "Query", "notifications notificationsUnreadCount"),
    *classify(OWNER, LIVE, "Subscription", "notificationEvents"),
    *classify(OWNER, NOTIFICATIONS, "Mutation", "markNotificationsRead"),
    # Notifications: the recipient's alone, naming only actors visible to them.
    *classify(
        OWNER,
        NOTIFICATIONS,
        "Notification",
        "id kind actorCount text threadId read createdAt updatedAt cursor",
    ),
    *classify(GUARDED, NOTIFICATIONS, "Notification", "actors post comment"),
    *classify_connection("NotificationConnection", NOTIFICATIONS),
    *classify(OWNER, LIVE, "NotificationEvent", "kind notification unreadCount"),
]


async def test_notifications_say_nothing_new(world: World) -> None:
    """After losing access, nothing the owner does reaches a viewer's notifications: not
    the post that mentions them, not the group's new messages."""
    audit = Audit(world)
    for viewer in UNAUTHORIZED:
        answer = await audit.ask(viewer, "notifications", NOTIFICATIONS_DOCUMENT)
        if viewer in SIGNED_IN and answer.data != world.notifications_before[viewer]:
            audit.leak(
                viewer,
                "notifications",
                f"changed after access was lost: {world.notifications_before[viewer]} "
                f"-> {answer.data}",
            )
        await audit.ask(viewer, "markNotificationsRead", "mutation { markNotificationsRead }")
    audit.assert_none()
