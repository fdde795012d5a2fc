"""Accounts: sign-up, sessions, profiles, the follow graph and blocks."""

from __future__ import annotations

from db.accounts.caches import AccountCaches
from db.base import tables_of
from domain.accounts.passwords import PasswordHashPool
from domain.features import DomainFeature, caches
from domain.state import AppState


def _password_hashing(state: AppState) -> PasswordHashPool:
    settings = state.runtime.settings
    return PasswordHashPool(
        threads=settings.password_hash_threads, queue=settings.password_hash_queue
    )


FEATURE = DomainFeature(
    name="accounts",
    tables=tables_of("db.accounts"),
    services={AccountCaches: caches(AccountCaches), PasswordHashPool: _password_hashing},
)
