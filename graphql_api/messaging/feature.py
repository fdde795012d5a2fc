"""Direct messages in the API, delivered live over subscriptions."""

from __future__ import annotations

from domain.messaging.threads import MAX_GROUP_MEMBERS
from graphql_api.features import ApiFeature
from graphql_api.messaging.loaders import MessagingLoaders
from graphql_api.messaging.schema import (
    MessagingMutations,
    MessagingQueries,
    MessagingSubscriptions,
)

FEATURE = ApiFeature(
    name="messaging",
    query=MessagingQueries,
    mutation=MessagingMutations,
    subscription=MessagingSubscriptions,
    loaders={MessagingLoaders: MessagingLoaders},
    # A group's size bounds its members, and one reaction and one read mark each.
    list_bounds={
        ("Thread", "members"): MAX_GROUP_MEMBERS,
        ("Thread", "readMarks"): MAX_GROUP_MEMBERS,
        ("Message", "reactions"): MAX_GROUP_MEMBERS,
    },
)
