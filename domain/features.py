"""The feature registry: what each ``domain/<feature>/`` owns, declared in its own
``feature.py`` and found on start, so that the shared parts (``AppState``, the test
suite's cleanup, the migrations check) loop over features instead of naming them.

A feature declares:

- ``tables``: the shard tables it owns (``tables_of("db.<feature>")``);
- ``services``: the objects it keeps for the life of a process, by class (its Redis
  caches from ``db/<feature>/caches.py``, a thread pool, a served model), each made on
  first use by ``AppState.of(kind)``.

Its events and jobs register themselves from ``domain/<feature>/jobs.py``
(``domain/jobs.py``); its API declares itself in ``graphql_api/<feature>/feature.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import domain
from db.base import tables_of

if TYPE_CHECKING:
    from domain.state import AppState

ServiceFactory = Callable[["AppState"], Any]
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class DomainFeature:
    name: str
    tables: tuple[str, ...] = ()
    services: Mapping[type[Any], ServiceFactory] = field(default_factory=dict)


def feature_modules(package: ModuleType, module_name: str) -> list[ModuleType]:
    """``<package>.<feature>.<module_name>`` for every feature package that has one, in
    name order; a package without it is not a feature of that kind."""
    found: list[ModuleType] = []
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not module.ispkg:
            continue
        qualified = f"{package.__name__}.{module.name}.{module_name}"
        try:
            found.append(importlib.import_module(qualified))
        except ModuleNotFoundError as error:
            if error.name != qualified:
                raise
    return found


_discovered: dict[tuple[str, tuple[str, ...]], tuple[Any, ...]] = {}


def declarations(package: ModuleType) -> tuple[Any, ...]:
    """Every ``<package>/<feature>/feature.py``'s ``FEATURE``, found once per set of the
    package's paths (a test that adds a folder to ``__path__`` sees its features)."""
    key = (package.__name__, tuple(package.__path__))
    features = _discovered.get(key)
    if features is None:
        features = tuple(module.FEATURE for module in feature_modules(package, "feature"))
        names = [feature.name for feature in features]
        if len(set(names)) != len(names):
            raise RuntimeError(f"two features share a name: {sorted(names)}")
        _discovered[key] = features
    return features


def declared_once(mappings: Iterable[Mapping[K, V]], what: str) -> dict[K, V]:
    """The features' declarations of one kind merged; a key two features declare is an
    error, not a silent choice."""
    merged: dict[K, V] = {}
    for mapping in mappings:
        for key, value in mapping.items():
            if key in merged:
                name = getattr(key, "__name__", repr(key))
                raise RuntimeError(f"{name} is declared by two features' {what}")
            merged[key] = value
    return merged


def domain_features() -> tuple[DomainFeature, ...]:
    return declarations(domain)


def service_factories() -> dict[type[Any], ServiceFactory]:
    return declared_once((feature.services for feature in domain_features()), "services")


def shard_tables() -> list[str]:
    """Every shard table: the features' and the outbox their events leave through."""
    owned = [table for feature in domain_features() for table in feature.tables]
    return [*owned, *tables_of("db.events")]


def caches(kind: Callable[[Any, Any], Any]) -> ServiceFactory:
    """A factory for a ``db/<feature>/caches.py`` class: made from the process's Redis
    client and settings."""

    def make(state: AppState) -> Any:
        return kind(state.runtime.redis, state.runtime.settings)

    return make
