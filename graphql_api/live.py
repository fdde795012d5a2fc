"""The one loop behind every subscription: the viewer's live events, on any process,
until their session ends.

Each event delivered gets fresh sessions and loaders (``Context.begin_operation``), so
nothing read for an earlier event on a long-lived socket is served stale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from domain import realtime
from domain.accounts.sessions import session_hash
from domain.errors import Unauthenticated
from domain.realtime import EventKind, LiveEvent
from graphql_api.context import Context

SESSION_ENDED = "Your session ended: log in again"


async def live_events(
    context: Context, *, wanted: Callable[[LiveEvent], bool]
) -> AsyncIterator[LiveEvent]:
    """The viewer's events that ``wanted`` keeps; raises UNAUTHENTICATED when the
    socket's session is revoked (logging out elsewhere ends delivery here too)."""
    token = context.caller.token
    own_session = session_hash(token) if token is not None else None
    async for event in realtime.events_for(context.state, context.signed_in_id):
        if event.kind is EventKind.SESSION_ENDED and event.session_hash == own_session:
            raise Unauthenticated(SESSION_ENDED)
        if not wanted(event):
            continue
        context.begin_operation()
        yield event
