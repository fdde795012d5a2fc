"""Persisted GraphQL documents by sha256: Apollo's automatic persisted queries.

A document registered by one process is found by every other through Redis
(``apq:<sha256>``); each process also keeps the ones it has seen, so a hot document costs
no round trip. Losing Redis loses nothing that matters: a client whose hash is not found
sends the document again, as the protocol says.
"""

from __future__ import annotations

from collections import OrderedDict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from db.redis import note_failure, redis_available

LOCAL_DOCUMENTS = 2000


def document_key(sha256_hex: str) -> str:
    return f"apq:{sha256_hex}"


class PersistedDocuments:
    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._local: OrderedDict[str, str] = OrderedDict()

    def _remember(self, sha256_hex: str, document: str) -> None:
        self._local[sha256_hex] = document
        self._local.move_to_end(sha256_hex)
        if len(self._local) > LOCAL_DOCUMENTS:
            self._local.popitem(last=False)

    async def get(self, sha256_hex: str) -> str | None:
        document = self._local.get(sha256_hex)
        if document is not None:
            self._local.move_to_end(sha256_hex)
            return document
        if not redis_available(self._redis):
            return None
        try:
            raw = await self._redis.get(document_key(sha256_hex))
        except RedisError as error:
            note_failure(self._redis, error)
            return None
        if raw is None:
            return None
        document = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._remember(sha256_hex, document)
        return document

    async def put(self, sha256_hex: str, document: str) -> None:
        """Keep a document its client has just proven to match its hash."""
        if self._local.get(sha256_hex) == document:
            return
        self._remember(sha256_hex, document)
        if not redis_available(self._redis):
            return
        try:
            await self._redis.set(document_key(sha256_hex), document, ex=self._ttl)
        except RedisError as error:
            note_failure(self._redis, error)
