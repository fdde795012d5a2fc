"""Per-operation loaders for direct messages."""

from __future__ import annotations

from collections.abc import Sequence

from db.messaging.records import MessageRecord
from domain.messaging.messages import reactions_of
from graphql_api.context import Loaders
from graphql_api.loader import Loader


class MessagingLoaders:
    def __init__(self, loaders: Loaders) -> None:
        self._sessions = loaders.sessions
        # Keyed by message: (member id, emoji) pairs, one query per thread shard a page.
        self.reactions: Loader[MessageRecord, list[tuple[int, str]]] = Loader(
            self._load_reactions, key_of=lambda row: (row.thread_id, row.seq)
        )

    async def _load_reactions(
        self, messages: Sequence[MessageRecord]
    ) -> list[list[tuple[int, str]]]:
        found = await reactions_of(self._sessions, messages)
        return [found[(message.thread_id, message.seq)] for message in messages]
