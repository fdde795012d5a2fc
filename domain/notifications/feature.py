"""Notifications, grouped by what they are about."""

from __future__ import annotations

from db.notifications import models
from domain.features import DomainFeature, tables_defined_in

FEATURE = DomainFeature(name="notifications", tables=tables_defined_in(models))
