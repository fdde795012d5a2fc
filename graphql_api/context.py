"""The per-request context: viewer, shard sessions and fresh DataLoaders."""

from __future__ import annotations

from typing import Annotated, TypeAlias

import strawberry
from fastapi import Depends, Request
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
    ) -> None:
        super().__init__()
        self.state = state
        self.sessions = sessions
        self.viewer_id = viewer_id
        self.token = token
        self.auth_error = auth_error
        self.loaders = Loaders(state, sessions, viewer_id)

    def require_viewer(self) -> int:
        return accounts_service.require_viewer(self.viewer_id, self.auth_error)


Info: TypeAlias = strawberry.Info[Context, None]


def get_app_state(request: Request) -> AppState:
    state: AppState = request.app.state.aperture
    return state


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def build_context(
    state: AppState, token: str | None, *, record_activity: bool = True
) -> Context:
    sessions = ShardSessions(state.runtime.databases)
    viewer_id: int | None = None
    auth_error: str | None = None
    if token is not None:
        viewer_id = await accounts_service.authenticate(state, sessions, token)
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
    )


async def get_context(
    request: Request,
    state: Annotated[AppState, Depends(get_app_state)],
) -> Context:
    return await build_context(state, bearer_token(request))
