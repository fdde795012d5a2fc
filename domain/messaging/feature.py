"""Direct messages: threads, members, messages, reactions and inboxes."""

from __future__ import annotations

from db.messaging import models
from domain.features import DomainFeature, tables_defined_in

FEATURE = DomainFeature(name="messaging", tables=tables_defined_in(models))
