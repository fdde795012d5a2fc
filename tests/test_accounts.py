"""Sign-up, log-in, revocable sessions, profiles and username rules."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.accounts.models import User
from db.runtime import Runtime
from db.session import ShardSessions
from tests.helpers import SIGN_UP, GraphQLClient, sign_up

VIEWER = "{ viewer { username fullName bio website isPrivate } }"


async def test_sign_up_log_in_and_viewer(gql: GraphQLClient) -> None:
    account = await sign_up(gql, "Grace.Hopper")
    viewer = await gql(VIEWER, token=account.token)
    assert viewer.ok()["viewer"]["username"] == "Grace.Hopper"

    logged_in = await gql(
        'mutation { logIn(username: "grace.hopper", password: "password123") { token } }'
    )
    token = logged_in.ok()["logIn"]["token"]
    assert token != account.token
    by_email = await gql(
        'mutation { logIn(username: "GRACE.HOPPER@example.com", password: "password123") '
        "{ user { username } } }"
    )
    assert by_email.ok()["logIn"]["user"]["username"] == "Grace.Hopper"


async def test_wrong_password_is_unauthenticated(gql: GraphQLClient) -> None:
    await sign_up(gql, "lovelace")
    result = await gql('mutation { logIn(username: "lovelace", password: "nope-nope") { token } }')
    assert result.codes == ["UNAUTHENTICATED"]


async def test_log_out_kills_the_token_at_once(gql: GraphQLClient) -> None:
    account = await sign_up(gql, "leaver")
    assert (await gql(VIEWER, token=account.token)).ok()["viewer"] is not None
    (await gql("mutation { logOut { ok } }", token=account.token)).ok()
    assert (await gql(VIEWER, token=account.token)).ok()["viewer"] is None
    denied = await gql(
        'mutation { createPost(input: {caption: "x"}) { post { id } } }', token=account.token
    )
    assert denied.codes == ["UNAUTHENTICATED"]
    assert "revoked" in denied.errors[0]["message"]


async def test_revocation_survives_a_redis_flush(gql: GraphQLClient, runtime: Runtime) -> None:
    account = await sign_up(gql, "flushed")
    (await gql("mutation { logOut { ok } }", token=account.token)).ok()
    await runtime.redis.flushdb()
    assert (await gql(VIEWER, token=account.token)).ok()["viewer"] is None


async def test_passwords_are_stored_as_argon2(gql: GraphQLClient, runtime: Runtime) -> None:
    await sign_up(gql, "hashed")
    sessions = ShardSessions(runtime.databases)
    rows = await sessions.scatter_all(
        lambda s: s.scalars(select(User.password_hash).where(User.username == "hashed"))
    )
    hashes = [value for result in rows.values() for value in result]
    assert len(hashes) == 1
    assert hashes[0].startswith("$argon2id$")
    assert "password123" not in hashes[0]


@pytest.mark.parametrize(
    "username",
    ["", "has space", "x" * 31, ".leading", "trailing.", "double..dot", "emoji😀", "dash-ed"],
)
async def test_invalid_usernames_are_rejected(gql: GraphQLClient, username: str) -> None:
    result = await gql(
        SIGN_UP, {"username": username, "email": "a@example.com", "password": "password123"}
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == "username"


async def test_valid_edge_usernames(gql: GraphQLClient) -> None:
    for username in ["a", "x" * 30, "under_score", "dot.ted", "_9"]:
        await sign_up(gql, username)


async def test_usernames_are_unique_case_insensitively(
    gql: GraphQLClient, runtime: Runtime
) -> None:
    await sign_up(gql, "Unique")
    result = await gql(
        SIGN_UP, {"username": "uNIQUE", "email": "other@example.com", "password": "password123"}
    )
    assert result.codes == ["CONFLICT"]
    sessions = ShardSessions(runtime.databases)
    counts = await sessions.scatter_all(
        lambda s: s.scalar(
            select(func.count()).select_from(User).where(User.username_lower == "unique")
        )
    )
    assert sum(count or 0 for count in counts.values()) == 1


async def test_duplicate_email_leaves_nothing_behind(gql: GraphQLClient, runtime: Runtime) -> None:
    await sign_up(gql, "first")
    result = await gql(
        SIGN_UP,
        {"username": "second", "email": "FIRST@example.com", "password": "password123"},
    )
    assert result.codes == ["CONFLICT"]
    sessions = ShardSessions(runtime.databases)
    counts = await sessions.scatter_all(
        lambda s: s.scalar(
            select(func.count()).select_from(User).where(User.username_lower == "second")
        )
    )
    assert sum(count or 0 for count in counts.values()) == 0
    # The name is still free: nothing was half-created.
    await sign_up(gql, "second")


async def test_update_profile(gql: GraphQLClient) -> None:
    account = await sign_up(gql, "profiled")
    result = await gql(
        'mutation { updateProfile(input: {fullName: "Pro Filed", bio: "hi", '
        'website: "https://example.com", isPrivate: true}) { user { fullName bio website isPrivate } } }',
        token=account.token,
    )
    assert result.ok()["updateProfile"]["user"] == {
        "fullName": "Pro Filed",
        "bio": "hi",
        "website": "https://example.com",
        "isPrivate": True,
    }
    bad = await gql(
        'mutation { updateProfile(input: {website: "javascript:alert(1)"}) { user { website } } }',
        token=account.token,
    )
    assert bad.codes == ["BAD_USER_INPUT"]
    unchanged = await gql(VIEWER, token=account.token)
    assert unchanged.ok()["viewer"]["website"] == "https://example.com"


async def test_deleted_account_disappears(gql: GraphQLClient) -> None:
    account = await sign_up(gql, "gone")
    other = await sign_up(gql, "stays")
    (await gql("mutation { deleteAccount { deletedUserId } }", token=account.token)).ok()
    assert (await gql('{ user(username: "gone") { id } }', token=other.token)).ok()["user"] is None
    node = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": account.id})
    assert node.codes == ["NOT_FOUND"]
    assert (await gql(VIEWER, token=account.token)).ok()["viewer"] is None
    search = await gql('{ searchUsers(prefix: "gon") { nodes { username } } }', token=other.token)
    assert search.ok()["searchUsers"]["nodes"] == []


async def test_orphan_email_claim_is_taken_over_only_when_stale(
    gql: GraphQLClient, runtime: Runtime
) -> None:
    """A sign-up that died between its email claim and its user commit leaves a claim whose
    owner never existed; an old one is taken over, a fresh one may still be committing."""
    from datetime import UTC, datetime, timedelta

    from db.accounts.models import UniqueKey
    from db.ids import compose_id

    sessions = ShardSessions(runtime.databases)
    ghost = compose_id(milliseconds_since_epoch=5, shard=1, sequence=7)
    for email, age in (("stale@example.com", 120), ("fresh@example.com", 5)):
        shard = runtime.shard_map.shard_for_email(email)
        async with sessions.shard(shard) as session:
            session.add(
                UniqueKey(
                    kind="email",
                    key=email,
                    owner_id=ghost,
                    created_at=datetime.now(UTC) - timedelta(seconds=age),
                )
            )
    taken = await gql(
        SIGN_UP, {"username": "heir", "email": "stale@example.com", "password": "password123"}
    )
    assert taken.ok()["signUp"]["user"]["username"] == "heir"
    refused = await gql(
        SIGN_UP, {"username": "hasty", "email": "fresh@example.com", "password": "password123"}
    )
    assert refused.codes == ["CONFLICT"]


async def test_user_by_username_is_cached_and_sign_up_overrides_a_miss(
    gql: GraphQLClient,
) -> None:
    missing = await gql('{ user(username: "latecomer") { username } }')
    assert missing.ok()["user"] is None
    await sign_up(gql, "LateComer")
    found = await gql('{ user(username: "latecomer") { username } }')
    assert found.ok()["user"] == {"username": "LateComer"}
    warm = await gql('{ user(username: "LATECOMER") { username } }')
    assert warm.ok()["user"] == {"username": "LateComer"}
    assert warm.work.sql_statements == 0
