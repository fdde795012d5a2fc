"""Account rules: sign-up, sessions, follows, requests and blocks.

Writes that span two users touch two shards. There is no distributed transaction: each
shard's part is its own transaction and every step is idempotent, so repeating the
action (a follow, an unfollow, a block) completes one that died half-way; a sign-up that
died half-way leaves an email claim that the next sign-up takes over. Caches are updated
only after commits.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from db.accounts import repository as accounts_repo
from db.accounts.models import User
from db.feed.store import ACTIVE_USERS_KEY
from db.ids import is_valid_id, shard_of
from db.redis import (
    cached_get,
    fill_if_absent,
    invalidate_later,
    note_failure,
    overwrite,
    read_epoch,
)
from db.session import ShardSessions
from graphql_api.accounts import throttle
from graphql_api.accounts.passwords import (
    configure_password_hashing as configure_password_hashing,
)
from graphql_api.accounts.passwords import hash_password, verify_password
from graphql_api.errors import BadUserInput, Conflict, Forbidden, NotFound, Unauthenticated
from graphql_api.state import AppState

# Instagram's rules: letters, digits, periods and underscores, at most 30 characters,
# and no period at either end or twice in a row.
MAX_USERNAME_LENGTH = 30
USERNAME_PATTERN = re.compile(r"^(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9._]{1,30}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
MAX_FULL_NAME = 64
MAX_BIO = 150
MAX_WEBSITE = 200
TOKEN_PREFIX = "ap"
ORPHAN_CLAIM_AGE = timedelta(minutes=1)


class FollowStatus(enum.Enum):
    SELF = "SELF"
    NONE = "NONE"
    REQUESTED = "REQUESTED"
    FOLLOWING = "FOLLOWING"


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str


def validate_username(username: str) -> str:
    if not USERNAME_PATTERN.match(username):
        raise BadUserInput(
            "Usernames are 1-30 letters, digits, '.' and '_', and cannot start or end with "
            "'.' or contain '..'",
            field="username",
        )
    return username


def _validate_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not EMAIL_PATTERN.match(email):
        raise BadUserInput(f"{email!r} is not an email address", field="email")
    return email


def _validate_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise BadUserInput(
            f"Passwords are {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            field="password",
        )


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


async def _start_session(state: AppState, sessions: ShardSessions, user: User) -> str:
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
    email = _validate_email(email)
    _validate_password(password)
    # Charged per attempt, taken or not: the limit also bounds probing for usernames.
    await throttle.check_signup_ip(state, client_ip)
    with state.password_hashing.reserve() as slot:
        password_hash = await slot.run(hash_password, password)
    shard_map = sessions.shard_map
    email_key = email.lower()
    # The user's home shard is its username's hash shard, so the username's uniqueness
    # is one unique index on one shard, checked in the same transaction as the insert.
    async with sessions.shard(shard_map.shard_for_key(f"username:{username.lower()}")) as session:
        user = await accounts_repo.insert_user(
            session, username=username, email=email, password_hash=password_hash
        )
        if user is None:
            raise Conflict(f"The username {username!r} is taken", field="username")
        async with sessions.shard(shard_map.shard_for_key(f"email:{email_key}")) as email_session:
            claimed = await accounts_repo.claim_unique_key(
                email_session, kind="email", key=email_key, owner_id=user.id
            )
            if not claimed:
                claimed = await _reclaim_orphan_email(sessions, email_session, email_key, user.id)
            if not claimed:
                # Raising rolls back the user insert too: nothing is left behind.
                raise Conflict("An account with this email already exists", field="email")
    await state.user_cache.store(user.id, user)
    # Overwrites a remembered "no such user", and is replayed if Redis is down.
    await overwrite(
        state.runtime.redis,
        _username_key(user.username_lower),
        str(user.id),
        ex=state.runtime.settings.cache_ttl_seconds,
    )
    token = await _start_session(state, sessions, user)
    await record_activity(state, sessions, user.id)
    return SignedIn(user=user, token=token)


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


USERNAME_CACHE_MISS_TTL_SECONDS = 60


def _username_key(username_lower: str) -> str:
    return f"username:{username_lower}"


async def user_id_for_username(
    state: AppState, sessions: ShardSessions, username: str
) -> int | None:
    """Usernames never change owner, so the name → id mapping caches safely; an unknown
    name is remembered briefly, and sign-up overwrites that answer when it claims the name."""
    username_lower = username.lower()
    redis = state.runtime.redis
    epoch = read_epoch(redis)
    # Redis down: a miss, and no fill (db/redis.py).
    cached = await cached_get(redis, _username_key(username_lower))
    if cached is not None:
        return None if cached == b"-" else int(cached)
    shard = sessions.shard_map.shard_for_key(f"username:{username_lower}")
    async with sessions.shard(shard) as session:
        user = await accounts_repo.get_user_by_username(session, username_lower)
    await fill_if_absent(
        redis,
        _username_key(username_lower),
        str(user.id) if user is not None else "-",
        ex=state.runtime.settings.cache_ttl_seconds
        if user is not None
        else USERNAME_CACHE_MISS_TTL_SECONDS,
        epoch=epoch,
    )
    return user.id if user is not None else None


async def _find_login_user(sessions: ShardSessions, login: str) -> User | None:
    shard_map = sessions.shard_map
    if "@" in login:
        async with sessions.shard(shard_map.shard_for_key(f"email:{login}")) as session:
            owner = await accounts_repo.find_unique_key_owner(session, kind="email", key=login)
        if owner is None or not shard_map.exists(shard_of(owner)):
            return None
        async with sessions.for_id(owner) as session:
            return await accounts_repo.get_user(session, owner)
    async with sessions.shard(shard_map.shard_for_key(f"username:{login}")) as session:
        return await accounts_repo.get_user_by_username(session, login)


async def log_in(
    state: AppState,
    sessions: ShardSessions,
    *,
    username_or_email: str,
    password: str,
    client_ip: str,
) -> SignedIn:
    """Throttled per IP and per account (graphql_api/accounts/throttle.py); a refused
    attempt checks no password. An unknown account verifies against a dummy hash, so it
    answers in the same time and with the same error as a wrong password."""
    login = username_or_email.strip().lower()
    await throttle.check_login_ip(state, client_ip)
    subject = throttle.login_subject(login)
    # The hashing slot first: a full queue must not count as a wrong password.
    with state.password_hashing.reserve() as slot:
        await throttle.begin_login_attempt(state, subject)
        user = await _find_login_user(sessions, login)
        matches = await slot.run(
            verify_password, user.password_hash if user is not None else None, password
        )
    if user is None or not matches:
        raise Unauthenticated("Wrong username, email or password")
    await throttle.login_succeeded(state, subject)
    token = await _start_session(state, sessions, user)
    await record_activity(state, sessions, user.id)
    return SignedIn(user=user, token=token)


async def authenticate(state: AppState, sessions: ShardSessions, token: str) -> int | None:
    """The user id a bearer token belongs to, or None if it is unknown or revoked."""
    user_id = _user_id_from_token(token)
    if user_id is None or not sessions.shard_map.exists(shard_of(user_id)):
        return None
    cache_key = f"session:{_token_hash(token).hex()}"
    redis = state.runtime.redis
    epoch = read_epoch(redis)
    # Redis down: read the session from PostgreSQL, and do not fill (db/redis.py).
    cached = await cached_get(redis, cache_key)
    if cached is not None:
        return int(cached) if cached != b"-" else None
    async with sessions.for_id(user_id) as session:
        live = await accounts_repo.find_live_session(session, _token_hash(token))
    valid = live is not None and live.user_id == user_id
    # NX: a log-out that committed after our read has already stored "-" and must win
    # (during an outage, its SET is replayed before cached reads resume, and no fill
    # lands from a read made before the outage began).
    await fill_if_absent(
        redis,
        cache_key,
        str(user_id) if valid else "-",
        ex=state.runtime.settings.cache_ttl_seconds,
        epoch=epoch,
    )
    return user_id if valid else None


async def log_out(state: AppState, sessions: ShardSessions, token: str) -> None:
    user_id = _user_id_from_token(token)
    if user_id is None:
        return
    async with sessions.for_id(user_id) as session:
        await accounts_repo.revoke_session(session, _token_hash(token))
    # After the commit: a request racing this one may have cached the old answer, so the
    # key is overwritten with the revoked marker rather than deleted. Redis down: that SET
    # is replayed before cached reads resume (db/redis.py); the log-out still succeeds.
    await overwrite(
        state.runtime.redis,
        f"session:{_token_hash(token).hex()}",
        "-",
        ex=state.runtime.settings.cache_ttl_seconds,
    )


async def record_activity(state: AppState, sessions: ShardSessions, user_id: int) -> None:
    """Mark the user active (feeds only fan out to recent users), at most once an hour."""
    now = datetime.now(UTC)
    redis = state.runtime.redis
    touch_key = f"active-touch:{user_id}"
    try:
        touched = await redis.set(touch_key, "1", ex=3600, nx=True)
    except RedisError as error:
        # Redis down: nothing recorded; the first request after it is back records it.
        note_failure(redis, error)
        return
    if touched:
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zscore(ACTIVE_USERS_KEY, str(user_id))
                pipe.zadd(ACTIVE_USERS_KEY, {str(user_id): now.timestamp()})
                previous, _ = await pipe.execute()
        except RedisError as error:
            # Drop the hourly gate once Redis answers, so the next request tries again.
            invalidate_later(redis, error, touch_key)
            return
        away_since = now.timestamp() - state.runtime.settings.feed_active_days * 86400
        if previous is None or previous < away_since:
            # Fan-out skipped this user while they were away: their feed is stale.
            await state.feeds.invalidate(user_id)
        async with sessions.for_id(user_id) as session:
            await accounts_repo.touch_last_active(session, user_id, now)


async def update_profile(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    *,
    full_name: str | None,
    bio: str | None,
    website: str | None,
    is_private: bool | None,
) -> User:
    values: dict[str, object] = {}
    for field, value, limit in (
        ("full_name", full_name, MAX_FULL_NAME),
        ("bio", bio, MAX_BIO),
        ("website", website, MAX_WEBSITE),
    ):
        if value is None:
            continue
        if len(value) > limit:
            raise BadUserInput(f"{field} is at most {limit} characters", field=field)
        values[field] = value
    if website and not re.match(r"^https?://[^\s]+$", website):
        raise BadUserInput("website must be an http:// or https:// URL", field="website")
    if is_private is not None:
        values["is_private"] = is_private
    if not values:
        raise BadUserInput("Nothing to update")
    async with sessions.for_id(viewer_id) as session:
        user = await accounts_repo.update_user(session, viewer_id, values)
    if user is None:
        raise NotFound("Your account no longer exists")
    await state.user_cache.store(user.id, user)
    return user


async def delete_account(state: AppState, sessions: ShardSessions, viewer_id: int) -> None:
    async with sessions.for_id(viewer_id) as session:
        await accounts_repo.mark_user_deleted(session, viewer_id)
        tokens = await accounts_repo.revoke_all_sessions(session, viewer_id)
    await state.user_cache.store(viewer_id, None)
    ttl = state.runtime.settings.cache_ttl_seconds
    if tokens:
        try:
            async with state.runtime.redis.pipeline(transaction=False) as pipe:
                for token_hash in tokens:
                    pipe.set(f"session:{token_hash.hex()}", "-", ex=ttl)
                await pipe.execute()
        except RedisError as error:
            # Redis down: the revoked markers are SET when it answers again (db/redis.py).
            for token_hash in tokens:
                key = f"session:{token_hash.hex()}"
                invalidate_later(state.runtime.redis, error, key, ("SET", key, "-", "EX", ttl))


# Relationships ------------------------------------------------------------------------


async def load_user(state: AppState, sessions: ShardSessions, user_id: int) -> User | None:
    rows = await state.user_cache.load([user_id], sessions=sessions, fetch=accounts_repo.get_users)
    return rows[0]


async def block_set(state: AppState, sessions: ShardSessions, user_id: int) -> set[int]:
    async def load() -> set[int]:
        async with sessions.for_id(user_id) as session:
            return await accounts_repo.block_relations(session, user_id)

    return await state.block_sets.members(user_id, load=load)


def _followee_loader(sessions: ShardSessions, user_id: int) -> Callable[[], Awaitable[list[int]]]:
    async def load() -> list[int]:
        async with sessions.for_id(user_id) as session:
            return await accounts_repo.all_followee_ids(session, user_id)

    return load


async def following_flags(
    state: AppState, sessions: ShardSessions, user_id: int, targets: list[int]
) -> list[bool]:
    loader = _followee_loader(sessions, user_id)
    return await state.following_sets.contains(user_id, targets, load=loader)


async def followee_ids(state: AppState, sessions: ShardSessions, user_id: int) -> set[int]:
    loader = _followee_loader(sessions, user_id)
    return await state.following_sets.members(user_id, load=loader)


async def _visible_target(
    state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int
) -> User:
    target = await load_user(state, sessions, target_id)
    if target is None or target_id in await block_set(state, sessions, viewer_id):
        raise NotFound("No such user")
    return target


async def refresh_users(state: AppState, sessions: ShardSessions, *user_ids: int) -> None:
    """Write these users' committed rows (new counts) through to the cache."""
    from workers.feed import note_follower_count

    for user_id in user_ids:
        async with sessions.for_id(user_id) as session:
            user = await accounts_repo.get_user(session, user_id)
        await state.user_cache.store(user_id, user)
        if user is not None:
            await note_follower_count(state, sessions, user_id, user.follower_count)


async def _connect(
    state: AppState, sessions: ShardSessions, *, follower_id: int, followee_id: int
) -> None:
    # The follower's side first: it decides what the follower sees, and a retried follow
    # completes the followee's side.
    async with sessions.for_id(follower_id) as session:
        await accounts_repo.add_following(session, follower_id=follower_id, followee_id=followee_id)
    async with sessions.for_id(followee_id) as session:
        await accounts_repo.add_follower(session, followee_id=followee_id, follower_id=follower_id)
        await accounts_repo.remove_follow_request(
            session, target_id=followee_id, requester_id=follower_id
        )
    await state.following_sets.changed(follower_id)
    await refresh_users(state, sessions, follower_id, followee_id)
    from graphql_api.feed.service import on_follow

    await on_follow(state, sessions, follower_id, followee_id)


async def _disconnect(
    state: AppState, sessions: ShardSessions, *, follower_id: int, followee_id: int
) -> None:
    async with sessions.for_id(follower_id) as session:
        await accounts_repo.remove_following(
            session, follower_id=follower_id, followee_id=followee_id
        )
    async with sessions.for_id(followee_id) as session:
        await accounts_repo.remove_follower(
            session, followee_id=followee_id, follower_id=follower_id
        )
        await accounts_repo.remove_follow_request(
            session, target_id=followee_id, requester_id=follower_id
        )
    await state.following_sets.changed(follower_id)
    await refresh_users(state, sessions, follower_id, followee_id)
    from graphql_api.feed.service import on_unfollow

    await on_unfollow(state, sessions, follower_id, followee_id)


async def follow_status(
    state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int
) -> FollowStatus:
    if viewer_id == target_id:
        return FollowStatus.SELF
    (follows,) = await following_flags(state, sessions, viewer_id, [target_id])
    if follows:
        return FollowStatus.FOLLOWING
    async with sessions.for_id(target_id) as session:
        requested = await accounts_repo.has_pending_request(
            session, target_id=target_id, requester_id=viewer_id
        )
    return FollowStatus.REQUESTED if requested else FollowStatus.NONE


async def follow(
    state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int
) -> FollowStatus:
    if viewer_id == target_id:
        raise BadUserInput("You cannot follow yourself", field="userId")
    target = await _visible_target(state, sessions, viewer_id, target_id)
    current = await follow_status(state, sessions, viewer_id, target_id)
    if current is FollowStatus.FOLLOWING:
        # Idempotent repair: a follow that crashed between its two shards is completed.
        await _connect(state, sessions, follower_id=viewer_id, followee_id=target_id)
        return current
    if current is FollowStatus.REQUESTED and target.is_private:
        return current
    if target.is_private:
        async with sessions.for_id(target_id) as session:
            await accounts_repo.add_follow_request(
                session, target_id=target_id, requester_id=viewer_id
            )
        return FollowStatus.REQUESTED
    await _connect(state, sessions, follower_id=viewer_id, followee_id=target_id)
    return FollowStatus.FOLLOWING


async def unfollow(
    state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int
) -> FollowStatus:
    if viewer_id == target_id:
        raise BadUserInput("You cannot unfollow yourself", field="userId")
    await _disconnect(state, sessions, follower_id=viewer_id, followee_id=target_id)
    return FollowStatus.NONE


async def answer_follow_request(
    state: AppState,
    sessions: ShardSessions,
    viewer_id: int,
    requester_id: int,
    *,
    approve: bool,
) -> None:
    async with sessions.for_id(viewer_id) as session:
        pending = await accounts_repo.has_pending_request(
            session, target_id=viewer_id, requester_id=requester_id
        )
    if not pending:
        raise NotFound("No pending follow request from that user")
    if approve:
        await _connect(state, sessions, follower_id=requester_id, followee_id=viewer_id)
    else:
        async with sessions.for_id(viewer_id) as session:
            await accounts_repo.remove_follow_request(
                session, target_id=viewer_id, requester_id=requester_id
            )


async def remove_follower(
    state: AppState, sessions: ShardSessions, viewer_id: int, follower_id: int
) -> None:
    await _disconnect(state, sessions, follower_id=follower_id, followee_id=viewer_id)


async def block(state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int) -> None:
    if viewer_id == target_id:
        raise BadUserInput("You cannot block yourself", field="userId")
    if await load_user(state, sessions, target_id) is None:
        raise NotFound("No such user")
    async with sessions.for_id(viewer_id) as session:
        await accounts_repo.add_block(session, blocker_id=viewer_id, blocked_id=target_id)
    async with sessions.for_id(target_id) as session:
        await accounts_repo.add_blocked_by(session, blocked_id=target_id, blocker_id=viewer_id)
    await state.block_sets.changed(viewer_id, target_id)
    # A block ends every relationship in both directions.
    await _disconnect(state, sessions, follower_id=viewer_id, followee_id=target_id)
    await _disconnect(state, sessions, follower_id=target_id, followee_id=viewer_id)


async def unblock(state: AppState, sessions: ShardSessions, viewer_id: int, target_id: int) -> None:
    async with sessions.for_id(viewer_id) as session:
        await accounts_repo.remove_block(session, blocker_id=viewer_id, blocked_id=target_id)
    async with sessions.for_id(target_id) as session:
        await accounts_repo.remove_blocked_by(session, blocked_id=target_id, blocker_id=viewer_id)
    await state.block_sets.changed(viewer_id, target_id)


def require_viewer(viewer_id: int | None, auth_error: str | None = None) -> int:
    if viewer_id is None:
        raise Unauthenticated(auth_error) if auth_error else Unauthenticated()
    return viewer_id


async def can_see_private_content(
    state: AppState, sessions: ShardSessions, viewer_id: int | None, owner: User
) -> bool:
    if not owner.is_private or viewer_id == owner.id:
        return True
    if viewer_id is None:
        return False
    (follows,) = await following_flags(state, sessions, viewer_id, [owner.id])
    return follows


def forbid_private() -> Forbidden:
    return Forbidden("This account is private: follow it and wait for approval to see this")
