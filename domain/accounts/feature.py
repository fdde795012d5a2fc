"""Accounts: sign-up, sessions, profiles, the follow graph and blocks."""

from __future__ import annotations

from db.accounts import models
from db.accounts.caches import AccountCaches
from domain.accounts.passwords import PasswordHashPool
from domain.features import DomainFeature, caches, tables_defined_in
from domain.state import AppState


def _password_hashing(state: AppState) -> PasswordHashPool:
    settings = state.runtime.settings
    return PasswordHashPool(
        threads=settings.password_hash_threads, queue=settings.password_hash_queue
    )


FEATURE = DomainFeature(
    name="accounts",
    tables=tables_defined_in(models),
    services={AccountCaches: caches(AccountCaches), PasswordHashPool: _password_hashing},
)
