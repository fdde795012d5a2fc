"""A context per GraphQL operation, and one authentication path for every transport."""

from __future__ import annotations

from db.session import ShardSessions
from domain.accounts.profiles import update_profile
from domain.accounts.sessions import log_out, sign_up
from domain.state import AppState
from graphql_api.auth import (
    INVALID_TOKEN,
    authenticate_caller,
    authorization_from_connection_params,
    token_from_authorization,
)
from graphql_api.context import Context
from graphql_api.schema import schema

VIEWER = "query Me { viewer { fullName } }"


async def _signed_up(state: AppState, username: str) -> tuple[int, str]:
    signed = await sign_up(
        state,
        ShardSessions(state.runtime.databases),
        username=username,
        email=f"{username}@example.com",
        password="password123",
        client_ip="127.0.0.1",
    )
    return signed.user.id, signed.token


async def test_each_operation_on_one_connection_gets_fresh_loaders(app_state: AppState) -> None:
    """A socket runs many operations with one context: loaders must not carry a value read
    by one operation into the next."""
    user_id, token = await _signed_up(app_state, "ctx.viewer")
    caller = await authenticate_caller(app_state, f"Bearer {token}")
    context = Context(state=app_state, caller=caller)
    first = await schema.execute(VIEWER, context_value=context, operation_name="Me")
    assert first.errors is None
    assert first.data == {"viewer": {"fullName": ""}}
    loaders = context.loaders
    await update_profile(
        app_state,
        ShardSessions(app_state.runtime.databases),
        user_id,
        full_name="Renamed",
        bio=None,
        website=None,
        is_private=None,
    )
    second = await schema.execute(VIEWER, context_value=context, operation_name="Me")
    assert second.errors is None
    assert second.data == {"viewer": {"fullName": "Renamed"}}
    assert context.loaders is not loaders


async def test_header_and_connection_init_authenticate_the_same_way(app_state: AppState) -> None:
    user_id, token = await _signed_up(app_state, "ctx.socket")
    header = f"Bearer {token}"
    for params in ({"Authorization": header}, {"authorization": header}, {"token": token}):
        authorization = authorization_from_connection_params(params)
        assert authorization is not None
        caller = await authenticate_caller(app_state, authorization)
        assert (caller.viewer_id, caller.error) == (user_id, None)
    junk: list[object] = [None, [], {"Authorization": 3}, {"other": header}, "Bearer x"]
    for value in junk:
        assert authorization_from_connection_params(value) is None
    assert (await authenticate_caller(app_state, None)).viewer_id is None
    await log_out(app_state, ShardSessions(app_state.runtime.databases), token)
    revoked = await authenticate_caller(app_state, header)
    assert (revoked.viewer_id, revoked.error) == (None, INVALID_TOKEN)


def test_only_bearer_tokens_of_a_plausible_length_are_read() -> None:
    assert token_from_authorization("Bearer abc") == "abc"
    assert token_from_authorization("bearer  abc ") == "abc"
    assert token_from_authorization("Basic abc") is None
    assert token_from_authorization("Bearer ") is None
    assert token_from_authorization("Bearer " + "x" * 500) == ""


async def test_fields_for_signed_in_viewers_say_why_they_refuse(app_state: AppState) -> None:
    """The permission class answers UNAUTHENTICATED, with the reason a token was refused."""
    anonymous = Context(state=app_state, caller=await authenticate_caller(app_state, None))
    result = await schema.execute(
        "query Feed { homeFeed { edges { node { id } } } }",
        context_value=anonymous,
        operation_name="Feed",
    )
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "UNAUTHENTICATED"}
    refused = Context(
        state=app_state, caller=await authenticate_caller(app_state, "Bearer ap_1_nope")
    )
    result = await schema.execute(
        'mutation Post { createPost(input: {caption: "x"}) { post { id } } }',
        context_value=refused,
        operation_name="Post",
    )
    assert result.errors is not None
    assert result.errors[0].message == INVALID_TOKEN
    assert result.errors[0].extensions == {"code": "UNAUTHENTICATED"}
