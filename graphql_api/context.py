"""The per-request context: viewer, shard sessions and fresh DataLoaders."""

from __future__ import annotations

from typing import TypeAlias

import strawberry
from strawberry.fastapi import BaseContext

from db.session import ShardSessions
from graphql_api.accounts import service as accounts_service
from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.posts.loaders import PostLoaders
from graphql_api.state import AppState


class Loaders:
    """Created per request so that no cached value leaks between viewers."""

    def __init__(self, state: AppState, sessions: ShardSessions, viewer_id: int | None) -> None:
        self.accounts = AccountLoaders(state, sessions, viewer_id)
        self.posts = PostLoaders(state, sessions, viewer_id, self.accounts)


class Context(BaseContext):
    def __init__(
        self,
        *,
        state: AppState,
        sessions: ShardSessions,
        viewer_id: int | None,
        token: str | None,
        auth_error: str | None,
        client_ip: str = "unknown",
    ) -> None:
        super().__init__()
        # The address rate limits key on (uvicorn has already applied trusted proxies).
        self.client_ip = client_ip
        # Strawberry quietly runs the first of several operations when none is named; the
        # guard refuses that ambiguity, as the GraphQL spec does.
        self.operation_name_given = False
        self.state = state
        self.sessions = sessions
        self.viewer_id = viewer_id
        self.token = token
        self.auth_error = auth_error
        self.loaders = Loaders(state, sessions, viewer_id)

    def require_viewer(self) -> int:
        return accounts_service.require_viewer(self.viewer_id, self.auth_error)


Info: TypeAlias = strawberry.Info[Context, None]


# Tokens are "ap_<user id>_<43 random characters>"; anything much longer is not one, and
# is refused before it reaches the id parser or a cache key.
MAX_TOKEN_LENGTH = 128


def token_from_header(header: str | None) -> str | None:
    """The bearer token of an Authorization header; "" for one that cannot be ours."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token = token.strip()
    return token if len(token) <= MAX_TOKEN_LENGTH else ""


async def build_context(
    state: AppState,
    token: str | None,
    *,
    record_activity: bool = True,
    client_ip: str = "unknown",
) -> Context:
    sessions = ShardSessions(state.runtime.databases)
    viewer_id: int | None = None
    auth_error: str | None = None
    if token is not None:
        viewer_id = await accounts_service.authenticate(state, sessions, token) if token else None
        if viewer_id is None:
            auth_error = "This token is invalid or was revoked: log in again"
        elif record_activity:
            await accounts_service.record_activity(state, sessions, viewer_id)
    return Context(
        state=state,
        sessions=sessions,
        viewer_id=viewer_id,
        token=token,
        auth_error=auth_error,
        client_ip=client_ip,
    )
