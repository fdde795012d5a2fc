"""Notifications, grouped by what they are about."""

from __future__ import annotations

from db.base import tables_of
from domain.features import DomainFeature

FEATURE = DomainFeature(name="notifications", tables=tables_of("db.notifications"))
