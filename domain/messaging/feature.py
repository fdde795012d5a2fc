"""Direct messages: threads, members, messages, reactions and inboxes."""

from __future__ import annotations

from db.base import tables_of
from domain.features import DomainFeature

FEATURE = DomainFeature(name="messaging", tables=tables_of("db.messaging"))
