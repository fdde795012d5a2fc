"""Account rules, called on the domain directly: sign-up, sessions, follows, requests and
blocks (domain/accounts/)."""

from __future__ import annotations

import hashlib

import pytest

from db.accounts.caches import session_key
from db.accounts.records import UserRecord as User
from db.feed.activity import activity_mark_key
from db.ids import shard_of
from db.instrumentation import count_work
from db.rate_limits import Decision, Quota, rate_key
from db.session import ShardSessions
from domain.accounts import blocks, graph, profiles
from domain.accounts import sessions as auth
from domain.accounts.graph import FollowStatus
from domain.accounts.relations import following_flags
from domain.errors import BadUserInput, Conflict, Forbidden, NotFound, Unauthenticated
from domain.posts import posts
from domain.state import AppState
from domain.visibility import direct
from tests.domain.support import (
    CLIENT_IP,
    PASSWORD,
    follow_approved,
    ids_of,
    new_post,
    new_user,
    reload,
    unique_name,
    unknown_id,
)


async def sign_up(
    state: AppState, sessions: ShardSessions, username: str, email: str, password: str = PASSWORD
) -> auth.SignedIn:
    return await auth.sign_up(
        state, sessions, username=username, email=email, password=password, client_ip=CLIENT_IP
    )


async def sees_user(state: AppState, sessions: ShardSessions, viewer: User, other: User) -> bool:
    return await direct(state, sessions, viewer.id).user(other.id) is not None


async def status(
    state: AppState, sessions: ShardSessions, viewer: User, other: User
) -> FollowStatus:
    return await graph.follow_status(state, sessions, viewer.id, other.id)


# Sign-up -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "email", "password", "field"),
    [
        (".leadingdot", None, PASSWORD, "username"),
        ("trailingdot.", None, PASSWORD, "username"),
        ("two..dots", None, PASSWORD, "username"),
        ("has space", None, PASSWORD, "username"),
        ("x" * 31, None, PASSWORD, "username"),
        ("", None, PASSWORD, "username"),
        (None, "not-an-email", PASSWORD, "email"),
        (None, "two@@example.com", PASSWORD, "email"),
        (None, None, "short", "password"),
        (None, None, "p" * 257, "password"),
    ],
    ids=[
        "username-leading-dot",
        "username-trailing-dot",
        "username-double-dot",
        "username-space",
        "username-too-long",
        "username-empty",
        "email-no-at",
        "email-two-ats",
        "password-too-short",
        "password-too-long",
    ],
)
async def test_sign_up_rejects_bad_input_and_keeps_nothing(
    state: AppState,
    sessions: ShardSessions,
    username: str | None,
    email: str | None,
    password: str,
    field: str,
) -> None:
    good_name = unique_name("valid")
    with pytest.raises(BadUserInput) as raised:
        await sign_up(
            state,
            sessions,
            good_name if username is None else username,
            f"{good_name}@example.com" if email is None else email,
            password,
        )
    assert raised.value.extensions == {"code": "BAD_USER_INPUT", "field": field}
    # The refused attempt claimed neither the name nor the email.
    if username is None:
        signed_in = await sign_up(state, sessions, good_name, f"{good_name}@example.com")
        assert signed_in.user.username == good_name


async def test_sign_up_refuses_a_taken_username_or_email_in_any_case(
    state: AppState, sessions: ShardSessions
) -> None:
    name = unique_name("Taken")
    first = await sign_up(state, sessions, name, f"{name}@Example.com")
    assert first.user.username == name
    assert first.user.username_lower == name.lower()

    other = unique_name("other")
    with pytest.raises(Conflict) as raised:
        await sign_up(state, sessions, name.upper(), f"{other}@example.com")
    assert raised.value.extensions == {"code": "CONFLICT", "field": "username"}

    with pytest.raises(Conflict) as raised:
        await sign_up(state, sessions, other, f"  {name.upper()}@EXAMPLE.COM ")
    assert raised.value.extensions == {"code": "CONFLICT", "field": "email"}
    # The email conflict rolled back the user it had inserted: the name is still free.
    later = await sign_up(state, sessions, other, f"{other}@example.com")
    assert later.user.username == other
    assert later.user.id != first.user.id


# Sessions ------------------------------------------------------------------------------


async def test_tokens_authenticate_until_logged_out(
    state: AppState, sessions: ShardSessions
) -> None:
    name = unique_name("session")
    signed_up = await sign_up(state, sessions, name, f"{name}@example.com")
    user_id = signed_up.user.id
    assert await auth.authenticate(state, sessions, signed_up.token) == user_id

    by_email = await auth.log_in(
        state,
        sessions,
        username_or_email=f" {name.upper()}@example.com",
        password=PASSWORD,
        client_ip=CLIENT_IP,
    )
    by_name = await auth.log_in(
        state, sessions, username_or_email=name, password=PASSWORD, client_ip=CLIENT_IP
    )
    assert by_email.user.id == by_name.user.id == user_id
    assert len({signed_up.token, by_email.token, by_name.token}) == 3

    await auth.log_out(state, sessions, signed_up.token)
    assert await auth.authenticate(state, sessions, signed_up.token) is None
    # The revocation is in PostgreSQL, not only in the cache: with the cached answer
    # gone (key layout from db/accounts/caches.py), the token is still refused.
    token_hash = hashlib.sha256(signed_up.token.encode()).digest()
    assert await state.runtime.redis.delete(session_key(token_hash)) == 1
    assert await auth.authenticate(state, sessions, signed_up.token) is None
    # Only that token: the others still work.
    assert await auth.authenticate(state, sessions, by_email.token) == user_id
    assert await auth.authenticate(state, sessions, by_name.token) == user_id


async def test_forged_and_malformed_tokens_authenticate_to_nobody(
    state: AppState, sessions: ShardSessions
) -> None:
    name = unique_name("forged")
    signed_up = await sign_up(state, sessions, name, f"{name}@example.com")
    user_id = signed_up.user.id
    secret = signed_up.token.split("_", 2)[2]
    other = await new_user(state, sessions, "victim")
    for token in [
        f"ap_{other.id}_{secret}",  # someone else's id with this user's secret
        f"ap_{user_id}_{secret}x",
        f"xx_{user_id}_{secret}",
        f"ap_{unknown_id(8000)}_{secret}",  # a shard that does not exist
        "ap_²_x",
        "",
        "ap",
    ]:
        assert await auth.authenticate(state, sessions, token) is None, token
        await auth.log_out(state, sessions, token)  # revokes nothing, raises nothing
    assert await auth.authenticate(state, sessions, signed_up.token) == user_id


async def test_one_call_checks_the_session_marks_activity_and_charges(
    state: AppState, sessions: ShardSessions
) -> None:
    """The request envelope (auth.authenticate_and_charge): a cached session, its
    activity mark and the charge to the address and the viewer in one round trip; a
    revoked or forged token charges the address alone and marks nobody."""
    redis = state.runtime.redis
    address_quota = Quota(name="ip", capacity=100, refill_per_second=1)
    viewer_quota = Quota(name="viewer", capacity=100, refill_per_second=1)
    address = (address_quota, unique_name("addr"))
    name = unique_name("envelope")
    signed_up = await sign_up(state, sessions, name, f"{name}@example.com")
    user_id = signed_up.user.id
    assert await auth.authenticate(state, sessions, signed_up.token) == user_id  # cached

    async def charge(token: str, cost: float = 10) -> tuple[auth.Authenticated, Decision]:
        return await auth.authenticate_and_charge(
            state, sessions, token, address=address, viewer_quota=viewer_quota, cost=cost
        )

    await charge(signed_up.token, cost=0)  # loads the script
    await redis.delete(activity_mark_key(user_id))
    with count_work() as work:
        (found, marked), decision = await charge(signed_up.token)
    assert (found, marked) == (user_id, True)
    assert work.redis_round_trips == 1
    assert work.sql_statements == 0
    assert decision.allowed
    assert decision.remaining == pytest.approx(90, abs=0.1)
    assert await redis.exists(rate_key(viewer_quota, str(user_id))) == 1
    assert (await charge(signed_up.token))[0] == (user_id, False)

    # Forged: the address pays, the user is neither charged nor marked.
    await redis.delete(activity_mark_key(user_id), rate_key(viewer_quota, str(user_id)))
    secret = signed_up.token.split("_", 2)[2]
    (found, marked), decision = await charge(f"ap_{user_id}_{secret}x")
    assert found is None
    assert decision.allowed
    assert await redis.exists(activity_mark_key(user_id)) == 0
    assert await redis.exists(rate_key(viewer_quota, str(user_id))) == 0

    # Not cached: read from its shard, then charged; the caller records the activity.
    await redis.delete(session_key(hashlib.sha256(signed_up.token.encode()).digest()))
    (found, marked), decision = await charge(signed_up.token)
    assert (found, marked) == (user_id, None)
    assert await redis.exists(rate_key(viewer_quota, str(user_id))) == 1

    # Refused whole: a cost past what the address has left charges nothing.
    (found, _), refused = await charge(signed_up.token, cost=95)
    assert found == user_id
    assert not refused.allowed
    assert refused.retry_after > 0

    # Revoked (the cache says so): nobody signed in, nobody marked.
    await auth.log_out(state, sessions, signed_up.token)
    await redis.delete(activity_mark_key(user_id))
    (found, marked), _ = await charge(signed_up.token, cost=0)
    assert (found, marked) == (None, None)
    assert await redis.exists(activity_mark_key(user_id)) == 0


async def test_wrong_password_and_deleted_account_do_not_log_in(
    state: AppState, sessions: ShardSessions
) -> None:
    name = unique_name("wrongpw")
    signed_up = await sign_up(state, sessions, name, f"{name}@example.com")
    # Cached as valid first, so that the deletion must overwrite the cached answer.
    assert await auth.authenticate(state, sessions, signed_up.token) == signed_up.user.id
    with pytest.raises(Unauthenticated):
        await auth.log_in(
            state,
            sessions,
            username_or_email=name,
            password="not the password",
            client_ip=CLIENT_IP,
        )
    await profiles.delete_account(state, sessions, signed_up.user.id)
    # Deleting the account revoked its sessions and closed log-in.
    assert await auth.authenticate(state, sessions, signed_up.token) is None
    with pytest.raises(Unauthenticated):
        await auth.log_in(
            state, sessions, username_or_email=name, password=PASSWORD, client_ip=CLIENT_IP
        )
    # The name stays reserved after the account is gone.
    with pytest.raises(Conflict) as raised:
        await sign_up(state, sessions, name, f"{unique_name('heir')}@example.com")
    assert raised.value.extensions["field"] == "username"


# Follows and requests ------------------------------------------------------------------


async def test_follow_public_account_at_once_and_unfollow(
    state: AppState, sessions: ShardSessions
) -> None:
    fan = await new_user(state, sessions, "fan")
    star = await new_user(state, sessions, "star")
    assert await graph.follow(state, sessions, fan.id, star.id) is FollowStatus.FOLLOWING
    # Following again changes nothing, counts included.
    assert await graph.follow(state, sessions, fan.id, star.id) is FollowStatus.FOLLOWING
    assert await status(state, sessions, fan, star) is FollowStatus.FOLLOWING
    assert await status(state, sessions, star, fan) is FollowStatus.NONE
    assert (await reload(state, sessions, star)).follower_count == 1
    assert (await reload(state, sessions, fan)).following_count == 1

    assert await graph.unfollow(state, sessions, fan.id, star.id) is FollowStatus.NONE
    assert await status(state, sessions, fan, star) is FollowStatus.NONE
    assert (await reload(state, sessions, star)).follower_count == 0
    assert (await reload(state, sessions, fan)).following_count == 0


async def test_private_account_follow_is_a_request_until_approved(
    state: AppState, sessions: ShardSessions
) -> None:
    owner = await new_user(state, sessions, "owner", private=True)
    asker = await new_user(state, sessions, "asker")
    post = await new_post(state, sessions, owner, "for followers only")

    assert await graph.follow(state, sessions, asker.id, owner.id) is FollowStatus.REQUESTED
    assert await graph.follow(state, sessions, asker.id, owner.id) is FollowStatus.REQUESTED
    assert await status(state, sessions, asker, owner) is FollowStatus.REQUESTED
    requests = await graph.follow_requests_page(
        sessions, owner.id, before_request_id=None, limit=10
    )
    assert [requester for _, requester in requests] == [asker.id]
    # A request is not a follow: the owner's posts stay hidden.
    assert await direct(state, sessions, asker.id).post(post.id) is None
    assert await following_flags(state, sessions, asker.id, [owner.id]) == [False]

    await graph.answer_follow_request(state, sessions, owner.id, asker.id, approve=True)
    assert await status(state, sessions, asker, owner) is FollowStatus.FOLLOWING
    assert await following_flags(state, sessions, asker.id, [owner.id]) == [True]
    assert ids_of([await direct(state, sessions, asker.id).post(post.id)]) == [post.id]
    assert (
        await graph.follow_requests_page(sessions, owner.id, before_request_id=None, limit=10) == []
    )
    # The request was used up.
    with pytest.raises(NotFound):
        await graph.answer_follow_request(state, sessions, owner.id, asker.id, approve=True)


async def test_declined_or_withdrawn_request_leaves_no_follow(
    state: AppState, sessions: ShardSessions
) -> None:
    owner = await new_user(state, sessions, "picky", private=True)
    declined = await new_user(state, sessions, "declined")
    withdrawn = await new_user(state, sessions, "withdrawn")
    for asker in (declined, withdrawn):
        assert await graph.follow(state, sessions, asker.id, owner.id) is FollowStatus.REQUESTED

    await graph.answer_follow_request(state, sessions, owner.id, declined.id, approve=False)
    # Unfollowing a pending request withdraws it.
    await graph.unfollow(state, sessions, withdrawn.id, owner.id)
    for asker in (declined, withdrawn):
        assert await status(state, sessions, asker, owner) is FollowStatus.NONE
        with pytest.raises(NotFound):
            await graph.answer_follow_request(state, sessions, owner.id, asker.id, approve=True)
    assert (
        await graph.follow_requests_page(sessions, owner.id, before_request_id=None, limit=10) == []
    )


async def test_you_cannot_follow_unfollow_or_block_yourself(
    state: AppState, sessions: ShardSessions
) -> None:
    me = await new_user(state, sessions, "narcissus")
    for action in (graph.follow, graph.unfollow, blocks.block):
        with pytest.raises(BadUserInput) as raised:
            await action(state, sessions, me.id, me.id)
        assert raised.value.extensions["field"] == "userId"
    assert await status(state, sessions, me, me) is FollowStatus.SELF
    found = await reload(state, sessions, me)
    assert (found.follower_count, found.following_count) == (0, 0)


async def test_follow_or_block_of_missing_users_is_not_found(
    state: AppState, sessions: ShardSessions
) -> None:
    me = await new_user(state, sessions, "seeker")
    gone = await new_user(state, sessions, "gone")
    await profiles.delete_account(state, sessions, gone.id)
    for target in (gone.id, unknown_id(shard_of(me.id))):
        with pytest.raises(NotFound):
            await graph.follow(state, sessions, me.id, target)
        with pytest.raises(NotFound):
            await blocks.block(state, sessions, me.id, target)


# Blocks --------------------------------------------------------------------------------


async def test_block_ends_follows_both_ways_and_hides_each_from_the_other(
    state: AppState, sessions: ShardSessions
) -> None:
    alice = await new_user(state, sessions, "alice")
    bob = await new_user(state, sessions, "bob")
    carol = await new_user(state, sessions, "carol")
    alice_post = await new_post(state, sessions, alice, "by alice")
    bob_post = await new_post(state, sessions, bob, "by bob")
    await follow_approved(state, sessions, alice, bob)
    await follow_approved(state, sessions, bob, alice)

    await blocks.block(state, sessions, alice.id, bob.id)

    assert await status(state, sessions, alice, bob) is FollowStatus.NONE
    assert await status(state, sessions, bob, alice) is FollowStatus.NONE
    for user in (alice, bob):
        row = await reload(state, sessions, user)
        assert (row.follower_count, row.following_count) == (0, 0)
    # Neither sees the other, their posts, or can follow back in.
    assert not await sees_user(state, sessions, alice, bob)
    assert not await sees_user(state, sessions, bob, alice)
    seen_by_alice = await direct(state, sessions, alice.id).posts([bob_post.id, alice_post.id])
    assert ids_of(seen_by_alice) == [None, alice_post.id]
    seen_by_bob = await direct(state, sessions, bob.id).posts([alice_post.id, bob_post.id])
    assert ids_of(seen_by_bob) == [None, bob_post.id]
    with pytest.raises(NotFound):
        await graph.follow(state, sessions, bob.id, alice.id)
    with pytest.raises(NotFound):
        await graph.follow(state, sessions, alice.id, bob.id)
    # Everyone else still sees both.
    assert await sees_user(state, sessions, carol, alice)
    assert await sees_user(state, sessions, carol, bob)


async def test_block_removes_pending_follow_requests_both_ways(
    state: AppState, sessions: ShardSessions
) -> None:
    owner = await new_user(state, sessions, "guarded", private=True)
    pest = await new_user(state, sessions, "pest", private=True)
    assert await graph.follow(state, sessions, pest.id, owner.id) is FollowStatus.REQUESTED
    assert await graph.follow(state, sessions, owner.id, pest.id) is FollowStatus.REQUESTED
    await blocks.block(state, sessions, owner.id, pest.id)
    for user, other in ((owner, pest), (pest, owner)):
        pending = await graph.follow_requests_page(
            sessions, user.id, before_request_id=None, limit=10
        )
        assert pending == []
        with pytest.raises(NotFound):
            await graph.answer_follow_request(state, sessions, user.id, other.id, approve=True)


async def test_unblock_restores_visibility_but_not_follows(
    state: AppState, sessions: ShardSessions
) -> None:
    alice = await new_user(state, sessions, "alice")
    bob = await new_user(state, sessions, "bob")
    bob_post = await new_post(state, sessions, bob, "by bob")
    await follow_approved(state, sessions, alice, bob)
    await follow_approved(state, sessions, bob, alice)
    await blocks.block(state, sessions, alice.id, bob.id)

    # Only the blocker can lift a block.
    await blocks.unblock(state, sessions, bob.id, alice.id)
    assert not await sees_user(state, sessions, alice, bob)
    assert not await sees_user(state, sessions, bob, alice)

    await blocks.unblock(state, sessions, alice.id, bob.id)
    assert await sees_user(state, sessions, alice, bob)
    assert await sees_user(state, sessions, bob, alice)
    assert ids_of([await direct(state, sessions, alice.id).post(bob_post.id)]) == [bob_post.id]
    assert await status(state, sessions, alice, bob) is FollowStatus.NONE
    assert await status(state, sessions, bob, alice) is FollowStatus.NONE
    # And following again works as for anyone.
    assert await graph.follow(state, sessions, alice.id, bob.id) is FollowStatus.FOLLOWING


async def test_mutual_blocks_need_both_lifted(state: AppState, sessions: ShardSessions) -> None:
    alice = await new_user(state, sessions, "alice")
    bob = await new_user(state, sessions, "bob")
    await blocks.block(state, sessions, alice.id, bob.id)
    await blocks.block(state, sessions, bob.id, alice.id)
    await blocks.unblock(state, sessions, alice.id, bob.id)
    assert not await sees_user(state, sessions, alice, bob)
    assert not await sees_user(state, sessions, bob, alice)
    await blocks.unblock(state, sessions, bob.id, alice.id)
    assert await sees_user(state, sessions, alice, bob)
    assert await sees_user(state, sessions, bob, alice)


async def test_search_leaves_out_blocked_users_but_keeps_their_place(
    state: AppState, sessions: ShardSessions
) -> None:
    stem = unique_name("find").lower()
    viewer = await new_user(state, sessions, "searcher")
    named = {
        letter: await new_user(state, sessions, "x", username=f"{stem}{letter}")
        for letter in "abcde"
    }
    await blocks.block(state, sessions, viewer.id, named["b"].id)
    await blocks.block(state, sessions, named["c"].id, viewer.id)
    await profiles.delete_account(state, sessions, named["d"].id)

    async def search(viewer_id: int | None, after: str | None = None) -> list[tuple[str, bool]]:
        found = await profiles.search_users(
            sessions,
            direct(state, sessions, viewer_id),
            prefix=stem.upper(),
            after_username=after,
            limit=3,
        )
        return [(name, user is not None) for name, user in found]

    # Hidden rows keep their position (the cursor moves past them); deleted users are gone.
    assert await search(viewer.id) == [(f"{stem}a", True), (f"{stem}b", False), (f"{stem}c", False)]
    assert await search(viewer.id, f"{stem}c") == [(f"{stem}e", True)]
    assert await search(None) == [(f"{stem}a", True), (f"{stem}b", True), (f"{stem}c", True)]
    with pytest.raises(BadUserInput) as raised:
        await profiles.search_users(
            sessions, direct(state, sessions, None), prefix="  ", after_username=None, limit=3
        )
    assert raised.value.extensions["field"] == "prefix"


async def test_private_lists_and_grid_need_a_follow(
    state: AppState, sessions: ShardSessions
) -> None:
    owner = await new_user(state, sessions, "closed", private=True)
    follower = await new_user(state, sessions, "insider")
    stranger = await new_user(state, sessions, "outsider")
    post = await new_post(state, sessions, owner, "grid")
    await follow_approved(state, sessions, follower, owner)

    async def reads(viewer: User | None) -> list[list[int]]:
        visibility = direct(state, sessions, None if viewer is None else viewer.id)
        followers, following = [
            await graph.connections_page(
                sessions, visibility, owner, side=side, before_edge_id=None, limit=10
            )
            for side in (graph.Side.FOLLOWERS, graph.Side.FOLLOWING)
        ]
        grid = await posts.author_post_ids(
            state, sessions, visibility, owner, before_id=None, limit=10
        )
        return [[user for _, user in followers], [user for _, user in following], grid]

    for allowed in (owner, follower):
        assert await reads(allowed) == [[follower.id], [], [post.id]]
    for refused in (stranger, None):
        with pytest.raises(Forbidden):
            await reads(refused)

    # Removing a follower takes their access away at once.
    await graph.remove_follower(state, sessions, owner.id, follower.id)
    assert await status(state, sessions, follower, owner) is FollowStatus.NONE
    with pytest.raises(Forbidden):
        await reads(follower)
    assert await direct(state, sessions, follower.id).post(post.id) is None
