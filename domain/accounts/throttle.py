"""Log-in and sign-up throttling: per client IP, and growing delays per account.

- **Per IP**: ``logIn`` and ``signUp`` each take one point from a GCRA bucket of the client
  address (``login_ip_*``, ``signup_ip_*`` settings), before any password is hashed.
- **Per account**: the first ``login_free_failures`` wrong passwords cost nothing; after
  the n-th (n >= free) the account waits ``LOGIN_BASE_DELAY_SECONDS * 2^(n - free)``
  seconds (1, 2, 4, ... capped at ``login_max_delay_seconds``) before the next attempt.
  An attempt inside the delay is refused with ``RATE_LIMITED`` before its password is
  checked, so guessing cannot go on; a right password clears the count. The account is
  the normalised login (username or email, lower-cased), hashed: unknown accounts are
  throttled exactly like real ones, so the throttle reveals nothing about which exist.
  A username and its email count apart (linking them would tell which email belongs to
  which username).
"""

from __future__ import annotations

import hashlib

from db.accounts.caches import AccountCaches
from db.rate_limits import BackoffPolicy, Quota
from domain.errors import RateLimited
from domain.state import AppState

LOGIN_BASE_DELAY_SECONDS = 1.0


def login_subject(username_or_email: str) -> str:
    return hashlib.sha256(username_or_email.strip().lower().encode()).hexdigest()


def login_policy(state: AppState) -> BackoffPolicy:
    settings = state.runtime.settings
    return BackoffPolicy(
        free_failures=settings.login_free_failures,
        base_delay_seconds=LOGIN_BASE_DELAY_SECONDS,
        max_delay_seconds=settings.login_max_delay_seconds,
    )


def login_ip_quota(state: AppState) -> Quota:
    settings = state.runtime.settings
    return Quota("login-ip", settings.login_ip_capacity, settings.login_ip_per_second)


def signup_ip_quota(state: AppState) -> Quota:
    settings = state.runtime.settings
    return Quota("signup-ip", settings.signup_ip_capacity, settings.signup_ip_per_second)


async def check_login_ip(state: AppState, client_ip: str) -> None:
    decision = await state.rate_limiter.acquire([(login_ip_quota(state), client_ip)])
    if not decision.allowed:
        raise RateLimited(
            "Too many log-in attempts from this address: try again later",
            retry_after=decision.retry_after,
        )


async def check_signup_ip(state: AppState, client_ip: str) -> None:
    decision = await state.rate_limiter.acquire([(signup_ip_quota(state), client_ip)])
    if not decision.allowed:
        raise RateLimited(
            "Too many sign-ups from this address: try again later",
            retry_after=decision.retry_after,
        )


async def begin_login_attempt(state: AppState, subject: str) -> None:
    """Count this attempt as a failure up front, or refuse it during the account's delay."""
    wait = await state.of(AccountCaches).login_failures.begin_attempt(subject, login_policy(state))
    if wait > 0:
        raise RateLimited(
            "Too many wrong passwords for this account: wait before trying again",
            retry_after=wait,
        )


async def login_succeeded(state: AppState, subject: str) -> None:
    await state.of(AccountCaches).login_failures.succeeded(subject)
