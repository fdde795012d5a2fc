"""Explore: candidates, trending, and the ALS model that ranks them."""

from __future__ import annotations

from db.explore import models
from db.explore.store import ExploreStore
from domain.explore.models import ServedModel
from domain.features import DomainFeature, tables_defined_in
from domain.state import AppState


def _store(state: AppState) -> ExploreStore:
    return ExploreStore(state.runtime.redis, state.runtime.object_store)


def _served_model(state: AppState) -> ServedModel:
    return ServedModel(state.of(ExploreStore))


FEATURE = DomainFeature(
    name="explore",
    tables=tables_defined_in(models),
    services={ExploreStore: _store, ServedModel: _served_model},
)
