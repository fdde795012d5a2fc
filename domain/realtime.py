"""Live events for signed-in users: what reaches their open sockets, on any process.

Events go to a user's channel (``db/realtime.py``) only after the change they describe
has committed, and only to users allowed to see it: the publisher decides (thread
members, minus anyone on either side of a block with the actor), so a socket never
filters what it was not meant to get. Delivery is at most once; the rows are the truth,
and a client that may have missed something (``EventKind.GAP``) catches up by cursor.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable

import msgspec

from db.messaging.records import MessageRecord
from domain.state import AppState


class EventKind(enum.StrEnum):
    MESSAGE = "message"
    READ = "read"
    REACTION = "reaction"
    TYPING = "typing"
    THREAD_UPDATED = "thread_updated"
    REMOVED_FROM_THREAD = "removed_from_thread"
    NOTIFICATION = "notification"
    # The socket's session was revoked (logged out): delivery ends.
    SESSION_ENDED = "session_ended"
    # Events may have been missed (a reconnect, a slow socket): catch up by cursor.
    GAP = "gap"


class LiveEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    kind: EventKind
    thread_id: int | None = None
    seq: int | None = None
    user_id: int | None = None
    emoji: str | None = None
    message: MessageRecord | None = None
    notification_id: int | None = None
    session_hash: str | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(LiveEvent)
GAP_EVENT = LiveEvent(kind=EventKind.GAP)


async def publish(state: AppState, user_ids: Iterable[int], event: LiveEvent) -> None:
    payload = _encoder.encode(event)
    await state.realtime.publish([(user_id, payload) for user_id in dict.fromkeys(user_ids)])


async def events_for(state: AppState, user_id: int) -> AsyncIterator[LiveEvent]:
    """Every live event for ``user_id`` from now on, while the caller keeps iterating."""
    async with state.realtime.listen(user_id) as listener:
        while True:
            payload = await listener.get()
            if payload is None:
                yield GAP_EVENT
                continue
            try:
                yield _decoder.decode(payload)
            except msgspec.DecodeError:
                continue  # not ours (another version's shape): nothing to deliver
