"""Explore: candidates, trending, and the ALS model that ranks them."""

from __future__ import annotations

from db.base import tables_of
from db.explore.store import ExploreStore
from domain.explore.models import ServedModel
from domain.features import DomainFeature
from domain.state import AppState


def _store(state: AppState) -> ExploreStore:
    return ExploreStore(state.runtime.redis, state.runtime.object_store)


def _served_model(state: AppState) -> ServedModel:
    return ServedModel(state.of(ExploreStore))


FEATURE = DomainFeature(
    name="explore",
    tables=tables_of("db.explore"),
    services={ExploreStore: _store, ServedModel: _served_model},
)
