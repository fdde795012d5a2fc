"""The API's side of the feature registry: each ``graphql_api/<feature>/feature.py``
declares its ``FEATURE``, and the shared parts loop over them: the schema's roots
(``schema.py``), the cost model's list bounds (``cost.py``), the fields compiled
execution may run (``compiled.py``) and the per-operation loaders (``context.py``).

A feature declares:

- ``query``, ``mutation``, ``subscription``: its root classes (merged into one root each);
- ``types``: types the schema must know though no field names them (``Node`` types);
- ``loaders``: its DataLoader holder class and how one is made for an operation;
- ``list_bounds``: lists a rule bounds, by (type, field), for the cost model;
- ``compiled_fields``: the fields of its types that compiled plans may run, by type;
- ``routes``: HTTP routes of its own beside ``/graphql`` (``app.py`` mounts them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute

import graphql_api
from domain.features import declarations
from domain.state import AppState


@dataclass(frozen=True)
class ApiFeature:
    name: str
    query: type | None = None
    mutation: type | None = None
    subscription: type | None = None
    types: tuple[type, ...] = ()
    loaders: Mapping[type[Any], Callable[[Any], Any]] = field(default_factory=dict)
    list_bounds: Mapping[tuple[str, str], int] = field(default_factory=dict)
    compiled_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # HTTP routes beside /graphql (media's /media/{key}), made for the app's state.
    routes: Callable[[AppState], Sequence[BaseRoute]] | None = None


def api_features() -> tuple[ApiFeature, ...]:
    return declarations(graphql_api)


_bounds: dict[int, dict[tuple[str, str], int]] = {}


def list_bounds() -> Mapping[tuple[str, str], int]:
    """Every feature's list bounds (read on every operation's cost analysis: made once)."""
    features = api_features()
    bounds = _bounds.get(id(features))
    if bounds is None:
        bounds = _bounds[id(features)] = {
            key: bound for feature in features for key, bound in feature.list_bounds.items()
        }
    return bounds


def compiled_fields(base: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """``base`` (the shared types') with every feature's compiled fields added."""
    merged = dict(base)
    for feature in api_features():
        for type_name, names in feature.compiled_fields.items():
            merged[type_name] = merged.get(type_name, frozenset()) | names
    return merged
