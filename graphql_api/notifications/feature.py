"""Notifications in the API, delivered live over subscriptions."""

from __future__ import annotations

from graphql_api.features import ApiFeature
from graphql_api.notifications.schema import (
    NotificationMutations,
    NotificationQueries,
    NotificationSubscriptions,
)

FEATURE = ApiFeature(
    name="notifications",
    query=NotificationQueries,
    mutation=NotificationMutations,
    subscription=NotificationSubscriptions,
    # db.notifications.repository.NAMED_ACTORS
    list_bounds={("Notification", "actors"): 3},
)
