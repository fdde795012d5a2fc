"""Sign-up, log-in, bearer tokens and log-out.

A sign-up touches two shards (the username's and the email's). There is no distributed
transaction: the email claim is made inside the user's transaction, so a failure rolls
the user back; a sign-up that died between the two commits leaves an email claim whose
owner does not exist, which the next sign-up with that email takes over.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from db.accounts import repository as accounts_repo
from db.accounts.caches import AccountCaches, session_key
from db.accounts.records import UserRecord, user_record
from db.feed.activity import ACTIVITY_MARK_SECONDS, activity_mark_key
from db.ids import is_valid_id, shard_of
from db.rate_limits import Decision, Quota
from db.session import ShardSessions
from domain import events
from domain.accounts import throttle
from domain.accounts.events import SESSION_ENDED, SessionEnded
from domain.accounts.passwords import PasswordHashPool, hash_password, verify_password
from domain.accounts.validation import validate_email, validate_password, validate_username
from domain.errors import Conflict, Unauthenticated
from domain.state import AppState

TOKEN_PREFIX = "ap"
ORPHAN_CLAIM_AGE = timedelta(minutes=1)


@dataclass(frozen=True)
class SignedIn:
    user: UserRecord
    token: str


def session_hash(token: str) -> str:
    """How live events name a session: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _user_id_from_token(token: str) -> int | None:
    """Tokens carry their owner's id, so a session is found on one shard with no lookup."""
    parts = token.split("_", 2)
    # isdigit() alone admits "²" and other digits int() refuses; ids fit in 19 digits.
    digits = parts[1] if len(parts) == 3 else ""
    if parts[0] != TOKEN_PREFIX or not (digits.isascii() and digits.isdigit()):
        return None
    user_id = int(digits) if len(digits) <= 19 else -1
    return user_id if is_valid_id(user_id) else None


async def start_session(sessions: ShardSessions, user: UserRecord) -> str:
    token = f"{TOKEN_PREFIX}_{user.id}_{secrets.token_urlsafe(32)}"
    async with sessions.for_id(user.id) as session:
        await accounts_repo.insert_session(session, token_hash=_token_hash(token), user_id=user.id)
    return token


async def sign_up(
    state: AppState,
    sessions: ShardSessions,
    *,
    username: str,
    email: str,
    password: str,
    client_ip: str,
) -> SignedIn:
    validate_username(username)
    email = validate_email(email)
    validate_password(password)
    # Charged per attempt, taken or not: the limit also bounds probing for usernames.
    await throttle.check_signup_ip(state, client_ip)
    with state.of(PasswordHashPool).reserve() as slot:
        password_hash = await slot.run(hash_password, password)
    shard_map = sessions.shard_map
    email_key = email.lower()
    # The user's home shard is its username's hash shard, so the username's uniqueness
    # is one unique index on one shard, checked in the same transaction as the insert.
    async with sessions.shard(shard_map.shard_for_username(username)) as session:
        user = await accounts_repo.insert_user(
            session, username=username, email=email, password_hash=password_hash
        )
        if user is None:
            raise Conflict(f"The username {username!r} is taken", field="username")
        async with sessions.shard(shard_map.shard_for_email(email_key)) as email_session:
            claimed = await accounts_repo.claim_unique_key(
                email_session, kind="email", key=email_key, owner_id=user.id
            )
            if not claimed:
                claimed = await _reclaim_orphan_email(sessions, email_session, email_key, user.id)
            if not claimed:
                # Raising rolls back the user insert too: nothing is left behind.
                raise Conflict("An account with this email already exists", field="email")
    await state.of(AccountCaches).user_cache.store(user.id, user)
    await state.of(AccountCaches).usernames.claim(user.username_lower, user.id)
    record = user_record(user)
    token = await start_session(sessions, record)
    return SignedIn(user=record, token=token)


async def _reclaim_orphan_email(
    sessions: ShardSessions, email_session: AsyncSession, email_key: str, new_owner: int
) -> bool:
    """A sign-up that died after claiming its email but before its user committed leaves a
    claim whose owner does not exist; a later sign-up with that email takes it over. So
    does one after the owner deleted their account. A claim younger than a minute is left
    alone: its sign-up may still be committing."""
    owner = await accounts_repo.find_unique_key_owner(email_session, kind="email", key=email_key)
    if owner is None or not sessions.shard_map.exists(shard_of(owner)):
        return False
    async with sessions.for_id(owner) as session:
        if await accounts_repo.get_user(session, owner) is not None:
            return False
    return await accounts_repo.reassign_unique_key(
        email_session,
        kind="email",
        key=email_key,
        from_owner=owner,
        to_owner=new_owner,
        claimed_before=datetime.now(UTC) - ORPHAN_CLAIM_AGE,
    )


class _Credentials(NamedTuple):
    """An account found by its login, and the hash its password must match."""

    user: UserRecord
    password_hash: str


async def _find_login_user(sessions: ShardSessions, login: str) -> _Credentials | None:
    shard_map = sessions.shard_map
    if "@" in login:
        async with sessions.shard(shard_map.shard_for_email(login)) as session:
            owner = await accounts_repo.find_unique_key_owner(session, kind="email", key=login)
        if owner is None or not shard_map.exists(shard_of(owner)):
            return None
        async with sessions.for_id(owner) as session:
            user = await accounts_repo.get_user(session, owner)
    else:
        async with sessions.shard(shard_map.shard_for_username(login)) as session:
            user = await accounts_repo.get_user_by_username(session, login)
    return _Credentials(user_record(user), user.password_hash) if user is not None else None


async def log_in(
    state: AppState,
    sessions: ShardSessions,
    *,
    username_or_email: str,
    password: str,
    client_ip: str,
) -> SignedIn:
    """Throttled per IP and per account (domain/accounts/throttle.py); a refused attempt
    checks no password. An unknown account verifies against a dummy hash, so it answers
    in the same time and with the same error as a wrong password."""
    login = username_or_email.strip().lower()
    await throttle.check_login_ip(state, client_ip)
    subject = throttle.login_subject(login)
    # The hashing slot first: a full queue must not count as a wrong password.
    with state.of(PasswordHashPool).reserve() as slot:
        await throttle.begin_login_attempt(state, subject)
        found = await _find_login_user(sessions, login)
        matches = await slot.run(
            verify_password, found.password_hash if found is not None else None, password
        )
    if found is None or not matches:
        raise Unauthenticated("Wrong username, email or password")
    await throttle.login_succeeded(state, subject)
    token = await start_session(sessions, found.user)
    return SignedIn(user=found.user, token=token)


class Authenticated(NamedTuple):
    user_id: int | None
    # The envelope's call also set the user's hourly activity mark: True if this request
    # set it, False if it was already set, None if it was not tried (a cache miss).
    marked_active: bool | None


async def authenticate(state: AppState, sessions: ShardSessions, token: str) -> int | None:
    """The user id a bearer token belongs to, or None if it is unknown or revoked."""
    user_id = _user_id_from_token(token)
    if user_id is None or not sessions.shard_map.exists(shard_of(user_id)):
        return None
    token_hash = _token_hash(token)
    epoch = state.of(AccountCaches).session_cache.epoch()
    # Redis down: read the session from PostgreSQL, and do not fill (db/redis.py).
    cached = await state.of(AccountCaches).session_cache.get(token_hash)
    if cached is not False:
        return cached if cached == user_id else None
    return await _session_from_rows(state, sessions, token_hash, user_id, epoch=epoch)


async def authenticate_and_charge(
    state: AppState,
    sessions: ShardSessions,
    token: str,
    *,
    address: tuple[Quota, str],
    viewer_quota: Quota,
    cost: float,
) -> tuple[Authenticated, Decision]:
    """A request's envelope: the session, the hourly activity mark and the rate-limit
    charge (the address's bucket, and the viewer's for a valid session), in one round trip
    when the session is cached (``RateLimiter.charge_with_session``). Otherwise, or while
    Redis cannot answer, each step on its own: the session from its shard, then the
    charge (the caller records the activity: ``domain/feed/activity.py``)."""
    user_id = _user_id_from_token(token)
    if user_id is None or not sessions.shard_map.exists(shard_of(user_id)):
        decision = await state.rate_limiter.acquire([address], cost)
        return Authenticated(user_id=None, marked_active=None), decision
    token_hash = _token_hash(token)
    epoch = state.of(AccountCaches).session_cache.epoch()
    charged = await state.rate_limiter.charge_with_session(
        session_key=session_key(token_hash),
        session_value=str(user_id),
        mark_key=activity_mark_key(user_id),
        mark_seconds=ACTIVITY_MARK_SECONDS,
        address=address,
        viewer=(viewer_quota, str(user_id)),
        cost=cost,
    )
    if charged is not None and charged.decision is not None:
        valid = charged.session == str(user_id).encode()
        authenticated = Authenticated(
            user_id=user_id if valid else None, marked_active=charged.marked if valid else None
        )
        return authenticated, charged.decision
    if charged is None:  # Redis did not answer (or the cost can never pass)
        found = await authenticate(state, sessions, token)
    else:  # not cached: nothing was charged
        found = await _session_from_rows(state, sessions, token_hash, user_id, epoch=epoch)
    charges = [address] if found is None else [address, (viewer_quota, str(found))]
    decision = await state.rate_limiter.acquire(charges, cost)
    return Authenticated(user_id=found, marked_active=None), decision


async def _session_from_rows(
    state: AppState, sessions: ShardSessions, token_hash: bytes, user_id: int, *, epoch: int
) -> int | None:
    async with sessions.for_id(user_id) as session:
        live = await accounts_repo.find_live_session(session, token_hash)
    valid = live is not None and live.user_id == user_id
    await state.of(AccountCaches).session_cache.fill(
        token_hash, user_id if valid else None, epoch=epoch
    )
    return user_id if valid else None


async def log_out(state: AppState, sessions: ShardSessions, token: str) -> None:
    user_id = _user_id_from_token(token)
    if user_id is None or not sessions.shard_map.exists(shard_of(user_id)):
        return  # no such session can exist
    async with sessions.for_id(user_id) as session:
        await accounts_repo.revoke_session(session, _token_hash(token))
        owed = await events.emit(
            session, SESSION_ENDED, SessionEnded(user_id=user_id, session_hash=session_hash(token))
        )
    await events.relay(state, sessions, owed)
    # After the commit; during a Redis outage the revocation is replayed before cached
    # reads resume, and the log-out still succeeds.
    await state.of(AccountCaches).session_cache.revoke([_token_hash(token)])
