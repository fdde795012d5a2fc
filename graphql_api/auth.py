"""One authentication path for every transport: an HTTP ``Authorization`` header and a
websocket ``connection_init`` payload both end here, once per request or connection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from db.rate_limits import Decision, Quota
from db.session import ShardSessions
from domain.accounts import sessions as sessions_rules
from domain.accounts.sessions import authenticate
from domain.feed.activity import record_activity
from domain.state import AppState

# Tokens are "ap_<user id>_<43 random characters>"; anything much longer is not one, and
# is refused before it reaches the id parser or a cache key.
MAX_TOKEN_LENGTH = 128
INVALID_TOKEN = "This token is invalid or was revoked: log in again"


@dataclass(frozen=True)
class Authentication:
    """Who is calling: a viewer, nobody (no credentials), or a refused token."""

    viewer_id: int | None = None
    token: str | None = None
    # Set when credentials were sent but are not valid: fields that need a viewer say so.
    error: str | None = None


ANONYMOUS = Authentication()


def token_from_authorization(value: str | None) -> str | None:
    """The bearer token of an Authorization value; "" for one that cannot be ours."""
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token = token.strip()
    return token if len(token) <= MAX_TOKEN_LENGTH else ""


def authorization_from_connection_params(params: object) -> str | None:
    """The Authorization value of a graphql-ws ``connection_init`` payload: clients send
    ``{"Authorization": "Bearer <token>"}`` (any case) or ``{"token": "<token>"}``."""
    if not isinstance(params, Mapping):
        return None
    for key, value in params.items():
        if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
            return value
    token = params.get("token")
    return f"Bearer {token}" if isinstance(token, str) else None


async def authenticate_caller(
    state: AppState, authorization: str | None, *, record: bool = True
) -> Authentication:
    """Check the credentials once; ``record`` marks the viewer active (feeds fan out to
    active users only)."""
    token = token_from_authorization(authorization)
    if token is None:
        return ANONYMOUS
    sessions = ShardSessions(state.runtime.databases)
    viewer_id = await authenticate(state, sessions, token) if token else None
    if viewer_id is not None and record:
        await record_activity(state, sessions, viewer_id)
    return _signed_in(viewer_id, token)


async def authenticate_and_charge(
    state: AppState,
    authorization: str | None,
    *,
    address: tuple[Quota, str],
    viewer_quota: Quota,
    cost: float,
) -> tuple[Authentication, Decision]:
    """``authenticate_caller`` (activity recorded) and the operation's rate-limit charge,
    in one round trip on a cached session (``domain.accounts.sessions``): for the HTTP
    endpoint, once the operation's cost is known (``graphql_api/guard.py``)."""
    token = token_from_authorization(authorization)
    if not token:
        caller = ANONYMOUS if token is None else Authentication(token=token, error=INVALID_TOKEN)
        return caller, await state.rate_limiter.acquire([address], cost)
    sessions = ShardSessions(state.runtime.databases)
    (viewer_id, marked), decision = await sessions_rules.authenticate_and_charge(
        state, sessions, token, address=address, viewer_quota=viewer_quota, cost=cost
    )
    if viewer_id is not None and marked is not False:
        await record_activity(state, sessions, viewer_id, marked=bool(marked))
    return _signed_in(viewer_id, token), decision


def _signed_in(viewer_id: int | None, token: str) -> Authentication:
    if viewer_id is None:
        return Authentication(token=token, error=INVALID_TOKEN)
    return Authentication(viewer_id=viewer_id, token=token)
