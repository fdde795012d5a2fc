"""Per-operation DataLoaders for direct messages."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from db.messaging.records import MessageRecord
from db.session import ShardSessions
from domain.messaging.messages import reactions_of


class MessagingLoaders:
    def __init__(self, sessions: ShardSessions) -> None:
        self._sessions = sessions
        # Keyed by message: (member id, emoji) pairs, one query per thread shard a page.
        self.reactions: DataLoader[MessageRecord, list[tuple[int, str]]] = DataLoader(
            load_fn=self._load_reactions, cache_key_fn=lambda row: (row.thread_id, row.seq)
        )

    async def _load_reactions(
        self, messages: Sequence[MessageRecord]
    ) -> list[list[tuple[int, str]]]:
        found = await reactions_of(self._sessions, messages)
        return [found[(message.thread_id, message.seq)] for message in messages]
