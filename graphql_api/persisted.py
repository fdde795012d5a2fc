"""Persisted documents: a request may name its document by sha256 instead of sending it.

Two modes, as production GraphQL servers offer them:

- **automatic** (Apollo's automatic persisted queries): a request with
  ``extensions.persistedQuery = {"version": 1, "sha256Hash": h}`` and no ``query`` runs the
  document known by ``h``; an unknown hash is answered ``PERSISTED_QUERY_NOT_FOUND``
  (message ``PersistedQueryNotFound``), and the client sends the document with its hash
  once, which registers it. Queries by hash can then go over GET, and be cached.
- **registered_only**: only the documents of a manifest made at build time run, by hash
  or by text; anything else is ``PERSISTED_QUERY_NOT_IN_LIST``. A client can then run no
  document the app's developers did not write.

A document found by hash reuses the parse and validation caches of its text, so it is
neither parsed nor validated again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.documents import PersistedDocuments
from infra.settings import ConfigurationError, Settings

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class PersistedQueryError(Exception):
    """A request's persisted-document part cannot be served; ``status`` is its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class DocumentRequest:
    query: str | None
    extensions: dict[str, Any] | None


def sha256_of(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """``{sha256: document}``, or Apollo's ``apollo-persisted-query-manifest``; every
    hash is checked against its document."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            "APERTURE_PERSISTED_DOCUMENTS_FILE", f"cannot read {path}: {error}"
        ) from None
    entries: dict[str, Any]
    if isinstance(raw, dict) and isinstance(raw.get("operations"), list):
        entries = {
            str(operation.get("id")): operation.get("body")
            for operation in raw["operations"]
            if isinstance(operation, dict)
        }
    elif isinstance(raw, dict):
        entries = raw
    else:
        raise ConfigurationError(
            "APERTURE_PERSISTED_DOCUMENTS_FILE", f"{path} is not a JSON object"
        )
    documents: dict[str, str] = {}
    for sha, document in entries.items():
        if not isinstance(document, str) or sha256_of(document) != sha.lower():
            raise ConfigurationError(
                "APERTURE_PERSISTED_DOCUMENTS_FILE",
                f"{path}: the entry {sha[:80]!r} is not the sha256 of its document",
            )
        documents[sha.lower()] = document
    return documents


class DocumentResolver:
    def __init__(self, settings: Settings, store: PersistedDocuments) -> None:
        self.mode = settings.persisted_documents
        self.store = store
        self.registered: dict[str, str] | None = None
        if settings.persisted_documents_file is not None:
            self.registered = load_manifest(settings.persisted_documents_file)

    async def resolve(self, request: DocumentRequest) -> str:
        """The document to run, or a ``PersistedQueryError``."""
        sha = _requested_hash(request.extensions)
        if sha is None:
            if request.query is None:
                raise PersistedQueryError(
                    400, "BAD_REQUEST", "'query' must be a string with the document"
                )
            if self.mode == "registered_only":
                self._require_registered(sha256_of(request.query))
            return request.query
        if self.mode == "off":
            raise PersistedQueryError(
                400, "PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported"
            )
        if request.query is not None:
            if sha256_of(request.query) != sha:
                raise PersistedQueryError(400, "BAD_REQUEST", "provided sha does not match query")
            if self.mode == "registered_only":
                self._require_registered(sha)
            else:
                await self.store.put(sha, request.query)
            return request.query
        if self.registered is not None and sha in self.registered:
            return self.registered[sha]
        if self.mode == "registered_only":
            self._require_registered(sha)
        document = await self.store.get(sha)
        if document is None:
            # 200, as Apollo's servers answer it: the client's cue to send the document.
            raise PersistedQueryError(200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        return document

    def _require_registered(self, sha: str) -> None:
        if self.registered is None or sha not in self.registered:
            raise PersistedQueryError(
                400,
                "PERSISTED_QUERY_NOT_IN_LIST",
                "Only registered documents run on this server: this one is not in its list",
            )


def _requested_hash(extensions: dict[str, Any] | None) -> str | None:
    if not extensions or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedQueryError(
            400, "BAD_REQUEST", "extensions.persistedQuery must be {version: 1, sha256Hash}"
        )
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not SHA256_HEX.match(sha.lower()):
        raise PersistedQueryError(
            400, "BAD_REQUEST", "extensions.persistedQuery.sha256Hash must be 64 hex digits"
        )
    return sha.lower()
