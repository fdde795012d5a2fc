"""Account queries and mutations. Resolvers only translate; the rules live in
``domain/accounts``."""

from __future__ import annotations

import strawberry

from domain.accounts import blocks, graph, profiles, relations, sessions
from domain.accounts.validation import could_be_username
from domain.errors import NotFound
from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.accounts.types import (
    FollowStatus,
    User,
    follow_status_of,
    resolve_user_node,
    user_connection,
)
from graphql_api.context import Info, SignedIn
from graphql_api.ids import user_id_from
from graphql_api.node import register_node_type
from graphql_api.relay import (
    Connection,
    build_connection,
    decode_cursor,
    decode_text_cursor,
    encode_text_cursor,
    page_size,
    to_global_id,
)

register_node_type("User", resolve_user_node)


@strawberry.input
class SignUpInput:
    username: str
    email: str
    password: str


@strawberry.input
class UpdateProfileInput:
    full_name: str | None = None
    bio: str | None = None
    website: str | None = None
    is_private: bool | None = None


@strawberry.type
class AuthPayload:
    token: str = strawberry.field(description="Send as 'Authorization: Bearer <token>'.")
    user: User


@strawberry.type
class LogOutPayload:
    ok: bool


@strawberry.type
class UserPayload:
    user: User


@strawberry.type
class FollowPayload:
    user: User
    status: FollowStatus


@strawberry.type
class DeleteAccountPayload:
    deleted_user_id: strawberry.ID


@strawberry.type
class BlockPayload:
    blocked_user_id: strawberry.ID


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The logged-in user, or null.")
    async def viewer(self, info: Info) -> User | None:
        if info.context.viewer_id is None:
            return None
        row = await info.context.loaders.of(AccountLoaders).user.load(info.context.viewer_id)
        return User(row=row) if row is not None else None

    @strawberry.field(description="A user by username (case-insensitive).")
    async def user(self, info: Info, username: str) -> User | None:
        if not could_be_username(username):
            # No such user can exist: nothing to look up, nothing to remember in the cache.
            return None
        user_id = await relations.user_id_for_username(
            info.context.state, info.context.sessions, username
        )
        return await resolve_user_node(info, user_id) if user_id is not None else None

    @strawberry.field(description="Users whose username starts with a prefix, in order.")
    async def search_users(
        self, info: Info, prefix: str, first: int | None = 10, after: str | None = None
    ) -> Connection[User]:
        limit = page_size(first)
        rows = await profiles.search_users(
            info.context.sessions,
            info.context.loaders.visibility,
            prefix=prefix,
            after_username=decode_text_cursor(after),
            limit=limit + 1,
        )
        return build_connection(
            rows,
            limit=limit,
            cursor_of=lambda row: row[0],
            node_of=lambda row: User(row=row[1]) if row[1] is not None else None,
            encode=encode_text_cursor,
        )

    @strawberry.field(
        description="Pending requests to follow the viewer, newest first.",
        permission_classes=[SignedIn],
    )
    async def follow_requests(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[User]:
        limit = page_size(first)
        rows = await graph.follow_requests_page(
            info.context.sessions,
            info.context.signed_in_id,
            before_request_id=decode_cursor(after),
            limit=limit + 1,
        )
        return await user_connection(info, rows, limit)


@strawberry.type
class AccountMutations:
    @strawberry.mutation
    async def sign_up(self, info: Info, input: SignUpInput) -> AuthPayload:
        ctx = info.context
        signed_in = await sessions.sign_up(
            ctx.state,
            ctx.sessions,
            username=input.username,
            email=input.email,
            password=input.password,
            client_ip=ctx.client_ip,
        )
        return AuthPayload(token=signed_in.token, user=User(row=signed_in.user))

    @strawberry.mutation
    async def log_in(self, info: Info, username: str, password: str) -> AuthPayload:
        ctx = info.context
        signed_in = await sessions.log_in(
            ctx.state,
            ctx.sessions,
            username_or_email=username,
            password=password,
            client_ip=ctx.client_ip,
        )
        return AuthPayload(token=signed_in.token, user=User(row=signed_in.user))

    @strawberry.mutation(
        description="Revoke the token this request was sent with.", permission_classes=[SignedIn]
    )
    async def log_out(self, info: Info) -> LogOutPayload:
        ctx = info.context
        assert ctx.caller.token is not None
        await sessions.log_out(ctx.state, ctx.sessions, ctx.caller.token)
        return LogOutPayload(ok=True)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UserPayload:
        ctx = info.context
        row = await profiles.update_profile(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            full_name=input.full_name,
            bio=input.bio,
            website=input.website,
            is_private=input.is_private,
        )
        return UserPayload(user=User(row=row))

    @strawberry.mutation(permission_classes=[SignedIn])
    async def delete_account(self, info: Info) -> DeleteAccountPayload:
        ctx = info.context
        viewer_id = ctx.signed_in_id
        await profiles.delete_account(ctx.state, ctx.sessions, viewer_id)
        return DeleteAccountPayload(deleted_user_id=to_global_id("User", viewer_id))

    @strawberry.mutation(
        description="Follow a user, or request to if the account is private.",
        permission_classes=[SignedIn],
    )
    async def follow(self, info: Info, user_id: strawberry.ID) -> FollowPayload:
        ctx = info.context
        viewer_id, target_id = ctx.signed_in_id, user_id_from(user_id)
        status = await graph.follow(ctx.state, ctx.sessions, viewer_id, target_id)
        return await _follow_payload(info, target_id, status)

    @strawberry.mutation(
        description="Unfollow a user, or withdraw a pending request.", permission_classes=[SignedIn]
    )
    async def unfollow(self, info: Info, user_id: strawberry.ID) -> FollowPayload:
        ctx = info.context
        viewer_id, target_id = ctx.signed_in_id, user_id_from(user_id)
        status = await graph.unfollow(ctx.state, ctx.sessions, viewer_id, target_id)
        return await _follow_payload(info, target_id, status)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def approve_follow_request(self, info: Info, user_id: strawberry.ID) -> UserPayload:
        ctx = info.context
        viewer_id, requester_id = ctx.signed_in_id, user_id_from(user_id)
        await graph.answer_follow_request(
            ctx.state, ctx.sessions, viewer_id, requester_id, approve=True
        )
        return await _user_payload(info, requester_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def deny_follow_request(self, info: Info, user_id: strawberry.ID) -> UserPayload:
        ctx = info.context
        viewer_id, requester_id = ctx.signed_in_id, user_id_from(user_id)
        await graph.answer_follow_request(
            ctx.state, ctx.sessions, viewer_id, requester_id, approve=False
        )
        return await _user_payload(info, requester_id)

    @strawberry.mutation(
        description="Stop a user from following the viewer.", permission_classes=[SignedIn]
    )
    async def remove_follower(self, info: Info, user_id: strawberry.ID) -> UserPayload:
        ctx = info.context
        viewer_id, follower_id = ctx.signed_in_id, user_id_from(user_id)
        await graph.remove_follower(ctx.state, ctx.sessions, viewer_id, follower_id)
        return await _user_payload(info, follower_id)

    @strawberry.mutation(
        description="Block a user: each disappears from the other's view.",
        permission_classes=[SignedIn],
    )
    async def block(self, info: Info, user_id: strawberry.ID) -> BlockPayload:
        ctx = info.context
        viewer_id, target_id = ctx.signed_in_id, user_id_from(user_id)
        await blocks.block(ctx.state, ctx.sessions, viewer_id, target_id)
        return BlockPayload(blocked_user_id=user_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def unblock(self, info: Info, user_id: strawberry.ID) -> UserPayload:
        ctx = info.context
        viewer_id, target_id = ctx.signed_in_id, user_id_from(user_id)
        await blocks.unblock(ctx.state, ctx.sessions, viewer_id, target_id)
        return await _user_payload(info, target_id)


async def _fresh_user(info: Info, user_id: int) -> User:
    # Loaders may hold the pre-mutation row; a mutation payload must show the new state.
    row = await relations.load_user(info.context.state, info.context.sessions, user_id)
    # A mutation's reply is a read like any other: nothing of a blocked user leaks.
    if row is None or (await info.context.loaders.visibility.visible_rows([row]))[0] is None:
        raise NotFound("No such user")
    return User(row=row)


async def _user_payload(info: Info, user_id: int) -> UserPayload:
    return UserPayload(user=await _fresh_user(info, user_id))


async def _follow_payload(info: Info, target_id: int, status: graph.FollowStatus) -> FollowPayload:
    return FollowPayload(user=await _fresh_user(info, target_id), status=follow_status_of(status))
