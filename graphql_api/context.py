"""The context of one GraphQL operation: who is calling, shard sessions and fresh
loaders (each feature's, made on first use, and the visibility policy over them).

Loaders cache what they read, so they must never outlive the operation: a socket that
runs many operations gets a fresh set for each (``OperationScope``), while the caller's
authentication is checked once per request or connection (``graphql_api/auth.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from typing import Any, TypeAlias, TypeVar

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.fastapi import BaseContext

from db.session import ShardSessions
from domain.errors import Unauthenticated
from domain.features import declared_once
from domain.state import AppState
from domain.visibility import FactsFrom, PostFacts, StoryFacts, UserFacts, Visibility
from graphql_api.auth import ANONYMOUS, Authentication
from graphql_api.features import ApiFeature, api_features

LoadersT = TypeVar("LoadersT")


class Loaders:
    """Created per operation so that no cached value leaks between viewers or moments.

    Each feature declares its loaders (``loaders`` in ``graphql_api/<feature>/feature.py``:
    a class and how one is made from this object); ``of(PostLoaders)`` makes a feature's
    on first use, so an operation pays only for the ones it reads through, and a socket
    waiting for its next event holds none."""

    def __init__(self, state: AppState, sessions: ShardSessions, viewer_id: int | None) -> None:
        self.state = state
        self.sessions = sessions
        self.viewer_id = viewer_id
        self._made: dict[type[Any], Any] = {}

    def of(self, kind: type[LoadersT]) -> LoadersT:
        """This operation's loaders of one feature, made on first use."""
        made = self._made.get(kind)
        if made is None:
            factory = _factories().get(kind)
            if factory is None:
                raise LookupError(f"no feature declares {kind.__name__} in its loaders")
            made = self._made[kind] = factory(self)
        return made  # type: ignore[no-any-return]  # made for ``kind``

    def answering(self, kind: type[Any]) -> Any:
        """The loaders of the feature that answers one kind of the policy's facts (its
        loaders class implements that protocol of ``domain/visibility.py``)."""
        return self.of(_answering(kind))

    @cached_property
    def visibility(self) -> Visibility:
        """The one policy, asking its facts of these loaders: its reads batch with the
        fields' and answer from what a page's plan primed them with."""
        return Visibility(
            FactsFrom(
                viewer_id=self.viewer_id,
                clock=self.state.clock,
                users=self.answering(UserFacts),
                posts=self.answering(PostFacts),
                stories=self.answering(StoryFacts),
            )
        )


LoaderFactory: TypeAlias = Callable[[Loaders], Any]
_by_features: dict[int, tuple[tuple[ApiFeature, ...], dict[type[Any], LoaderFactory]]] = {}


def _factories() -> Mapping[type[Any], LoaderFactory]:
    """Every feature's loader classes and factories (made once per set of features)."""
    features = api_features()
    entry = _by_features.get(id(features))
    if entry is None or entry[0] is not features:
        factories: dict[type[Any], LoaderFactory] = declared_once(
            (feature.loaders for feature in features), "loaders"
        )
        entry = _by_features[id(features)] = (features, factories)
    return entry[1]


_answers: dict[tuple[int, type[Any]], type[Any]] = {}


def _answering(kind: type[Any]) -> type[Any]:
    factories = _factories()
    key = (id(factories), kind)
    answering = _answers.get(key)
    if answering is None:
        found = [loaders for loaders in factories if kind in loaders.__mro__]
        if len(found) != 1:
            raise LookupError(f"{len(found)} features' loaders answer {kind.__name__}, not one")
        answering = _answers[key] = found[0]
    return answering


class Context(BaseContext):
    def __init__(
        self,
        *,
        state: AppState,
        caller: Authentication | None = None,
        authorization: str | None = None,
        client_ip: str = "unknown",
    ) -> None:
        super().__init__()
        self.state = state
        # No caller yet: the guard checks ``authorization`` together with the operation's
        # rate-limit charge, in one round trip, before anything runs (graphql_api/guard.py).
        self.authorization = authorization
        self.authenticated = caller is not None
        self.caller = caller if caller is not None else ANONYMOUS
        self.viewer_id = self.caller.viewer_id
        # Set when the session's database could not be reached: the endpoint answers 503.
        self.session_unavailable = False
        # The address rate limits key on (uvicorn has already applied trusted proxies).
        self.client_ip = client_ip
        # Strawberry quietly runs the first of several operations when none is named; the
        # guard refuses that ambiguity, as the GraphQL spec does.
        self.operation_name_given = False
        self._operations = 0
        self.sessions = ShardSessions(state.runtime.databases)
        self.loaders = Loaders(state, self.sessions, self.viewer_id)

    def sign_in(self, caller: Authentication) -> None:
        """The caller, once checked: loaders for that viewer (none has read anything)."""
        self.caller = caller
        self.viewer_id = caller.viewer_id
        self.authenticated = True
        self.loaders = Loaders(self.state, self.sessions, self.viewer_id)

    def begin_operation(self) -> None:
        """Fresh sessions and loaders for every operation after the first."""
        if self._operations:
            self.sessions = ShardSessions(self.state.runtime.databases)
            self.loaders = Loaders(self.state, self.sessions, self.viewer_id)
        self._operations += 1

    def fresh_copy(self) -> Context:
        """The same caller with new sessions and loaders: nothing read so far is shared."""
        copy = Context(state=self.state, caller=self.caller, client_ip=self.client_ip)
        copy.authenticated = self.authenticated
        copy.operation_name_given = self.operation_name_given
        return copy

    @property
    def signed_in_id(self) -> int:
        """The viewer's id, in a field guarded by ``SignedIn``."""
        if self.viewer_id is None:
            raise Unauthenticated(self.caller.error) if self.caller.error else Unauthenticated()
        return self.viewer_id


Info: TypeAlias = strawberry.Info[Context, None]


class SignedIn(strawberry.BasePermission):
    """Only for a logged-in viewer: UNAUTHENTICATED otherwise, saying why."""

    def has_permission(self, source: object, info: Info, **kwargs: object) -> bool:
        info.context.signed_in_id  # noqa: B018 (raises the typed error)
        return True


class OperationScope(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            context.begin_operation()
        yield
