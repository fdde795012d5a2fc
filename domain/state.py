"""Process-wide state every request, job and command shares: connections, and each
feature's services (its caches, pools, served models), made on first use.

``AppState`` names no feature: a feature declares its services in its own
``domain/<feature>/feature.py`` (``domain/features.py``), and code reaches them by
class: ``state.of(PostCaches).post_likes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from db.rate_limits import RateLimiter
from db.realtime import RealtimeBus
from db.runtime import Runtime
from domain.features import service_factories

ServiceT = TypeVar("ServiceT")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppState:
    runtime: Runtime
    # Request limits, shared by every process through Redis (db/rate_limits.py): the
    # edge charges them before any feature runs.
    rate_limiter: RateLimiter = field(init=False)
    # Live events to this process's sockets, and from any process (db/realtime.py).
    realtime: RealtimeBus = field(init=False)
    # The time every rule reads (story expiry, signed URLs); tests replace it.
    clock: Callable[[], datetime] = field(default=utc_now)
    _services: dict[type[Any], Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.rate_limiter = RateLimiter(self.runtime.redis)
        self.realtime = RealtimeBus(self.runtime.redis, self.runtime.redis_url)

    def of(self, kind: type[ServiceT]) -> ServiceT:
        """The process's one ``kind``, as the feature that declares it makes it."""
        service = self._services.get(kind)
        if service is None:
            factory = service_factories().get(kind)
            if factory is None:
                raise LookupError(f"no feature declares a service {kind.__name__}")
            service = self._services[kind] = factory(self)
        return cast(ServiceT, service)

    def shutdown(self) -> None:
        """Stop what services run of their own (thread pools)."""
        for service in self._services.values():
            stop = getattr(service, "shutdown", None)
            if callable(stop):
                stop()
