"""Every decoder of a global id in arguments: the opaque id a client passes back, to the
row id it names, refused (BAD_USER_INPUT) unless it is well formed and names the type
expected. One module for all types, so a feature's schema decodes another feature's ids
without importing that feature. The encoding itself is ``graphql_api/relay.py``'s
(``to_global_id``, ``from_global_id``)."""

from __future__ import annotations

import strawberry

from domain.errors import BadUserInput
from graphql_api.relay import from_global_id


def user_id_from(global_id: strawberry.ID) -> int:
    return from_global_id(global_id, expected="User")[1]


def post_id_from(global_id: strawberry.ID) -> int:
    return from_global_id(global_id, expected="Post")[1]


def comment_id_from(global_id: strawberry.ID) -> int:
    return from_global_id(global_id, expected="Comment")[1]


def media_id_from(global_id: strawberry.ID, *, field: str = "mediaId") -> int:
    return from_global_id(global_id, expected="Media")[1]


def story_id_from(global_id: strawberry.ID) -> int:
    return from_global_id(global_id, expected="Story")[1]


def thread_id_from(global_id: strawberry.ID, *, field: str = "threadId") -> int:
    try:
        return from_global_id(global_id, expected="Thread")[1]
    except BadUserInput:
        raise BadUserInput("Not a thread id", field=field) from None
