"""Account queries and mutations. Resolvers only translate; rules live in ``service``."""

from __future__ import annotations

import strawberry

from db.accounts import repository as accounts_repo
from graphql_api.accounts import service
from graphql_api.accounts.types import (
    FollowStatus,
    User,
    follow_status_of,
    resolve_user_node,
    user_connection,
)
from graphql_api.context import Info
from graphql_api.errors import BadUserInput, NotFound
from graphql_api.node import register_node_type
from graphql_api.relay import (
    Connection,
    build_connection,
    decode_cursor,
    decode_text_cursor,
    encode_text_cursor,
    from_global_id,
    page_size,
    to_global_id,
)

register_node_type("User", resolve_user_node)


def user_id_from(global_id: strawberry.ID) -> int:
    return from_global_id(global_id, expected="User")[1]


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
        row = await info.context.loaders.accounts.user.load(info.context.viewer_id)
        return User(row=row) if row is not None else None

    @strawberry.field(description="A user by username (case-insensitive).")
    async def user(self, info: Info, username: str) -> User | None:
        if not service.USERNAME_PATTERN.match(username):
            # No such user can exist: nothing to look up, nothing to remember in the cache.
            return None
        user_id = await service.user_id_for_username(
            info.context.state, info.context.sessions, username
        )
        return await resolve_user_node(info, user_id) if user_id is not None else None

    @strawberry.field(description="Users whose username starts with a prefix, in order.")
    async def search_users(
        self, info: Info, prefix: str, first: int | None = 10, after: str | None = None
    ) -> Connection[User]:
        limit = page_size(first)
        prefix_lower = prefix.strip().lower()
        if not prefix_lower:
            raise BadUserInput("prefix must not be empty", field="prefix")
        if len(prefix_lower) > service.MAX_USERNAME_LENGTH:
            raise BadUserInput(
                f"Usernames have at most {service.MAX_USERNAME_LENGTH} characters",
                field="prefix",
            )
        after_username = decode_text_cursor(after)
        # Every shard holds some usernames: ask all at once, merge in username order.
        per_shard = await info.context.sessions.scatter_all(
            lambda session: accounts_repo.users_with_prefix(
                session, prefix_lower, after_username=after_username, limit=limit + 1
            )
        )
        rows = sorted(
            (row for rows in per_shard.values() for row in rows),
            key=lambda row: row.username_lower,
        )[: limit + 1]
        blocked = await info.context.loaders.accounts.viewer_block_set()
        return build_connection(
            rows,
            limit=limit,
            cursor_of=lambda row: row.username_lower,
            node_of=lambda row: User(row=row) if row.id not in blocked else None,
            encode=encode_text_cursor,
        )

    @strawberry.field(description="Pending requests to follow the viewer, newest first.")
    async def follow_requests(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[User]:
        viewer_id = info.context.require_viewer()
        limit = page_size(first)
        async with info.context.sessions.for_id(viewer_id) as session:
            rows = await accounts_repo.follow_requests_page(
                session, viewer_id, before_request_id=decode_cursor(after), limit=limit + 1
            )
        return await user_connection(info, rows, limit)


@strawberry.type
class AccountMutations:
    @strawberry.mutation
    async def sign_up(self, info: Info, input: SignUpInput) -> AuthPayload:
        ctx = info.context
        signed_in = await service.sign_up(
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
        signed_in = await service.log_in(
            ctx.state,
            ctx.sessions,
            username_or_email=username,
            password=password,
            client_ip=ctx.client_ip,
        )
        return AuthPayload(token=signed_in.token, user=User(row=signed_in.user))

    @strawberry.mutation(description="Revoke the token this request was sent with.")
    async def log_out(self, info: Info) -> LogOutPayload:
        ctx = info.context
        ctx.require_viewer()
        assert ctx.token is not None
        await service.log_out(ctx.state, ctx.sessions, ctx.token)
        return LogOutPayload(ok=True)

    @strawberry.mutation
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UserPayload:
        ctx = info.context
        row = await service.update_profile(
            ctx.state,
            ctx.sessions,
            ctx.require_viewer(),
            full_name=input.full_name,
            bio=input.bio,
            website=input.website,
            is_private=input.is_private,
        )
        return UserPayload(user=User(row=row))

    @strawberry.mutation
    async def delete_account(self, info: Info) -> DeleteAccountPayload:
        ctx = info.context
        viewer_id = ctx.require_viewer()
        await service.delete_account(ctx.state, ctx.sessions, viewer_id)
        return DeleteAccountPayload(deleted_user_id=to_global_id("User", viewer_id))

    @strawberry.mutation(description="Follow a user, or request to if the account is private.")
    async def follow(self, info: Info, user_id: strawberry.ID) -> FollowPayload:
        ctx = info.context
        viewer_id, target_id = ctx.require_viewer(), user_id_from(user_id)
        status = await service.follow(ctx.state, ctx.sessions, viewer_id, target_id)
        return await _follow_payload(info, target_id, status)

    @strawberry.mutation(description="Unfollow a user, or withdraw a pending request.")
    async def unfollow(self, info: Info, user_id: strawberry.ID) -> FollowPayload:
        ctx = info.context
        viewer_id, target_id = ctx.require_viewer(), user_id_from(user_id)
        status = await service.unfollow(ctx.state, ctx.sessions, viewer_id, target_id)
        return await _follow_payload(info, target_id, status)

    @strawberry.mutation
    async def approve_follow_request(self, info: Info, user_id: strawberry.ID) -> UserPayload:
        ctx = info.context
        viewer_id, requester_id = ctx.require_viewer(), user_id_from(user_id)
        await service.answer_follow_request(
            ctx.state, ctx.sessions, viewer_id, requester_id, approve=True
        )
        return await _user_payload(info, requester_id)

    @strawberry.mutation
    async def deny_follow_request(self, info: Info, user_id: strawberry.ID) -> UserPayload:
        ctx = info.context
        viewer_id, requester_id = ctx.require_viewer(), user_id_from(user_id)
        await service.answer_follow_request(
            ctx.state, ctx.sessions, viewer_id, requester_id, approve=False
        )
        return await _user_payload(info, requester_id)

    @strawberry.mutation(description="Stop a user from following the viewer.")
    async def remove_follower(self, info: Info, user_id: strawberry.ID) -> UserPayload:
        ctx = info.context
        viewer_id, follower_id = ctx.require_viewer(), user_id_from(user_id)
        await service.remove_follower(ctx.state, ctx.sessions, viewer_id, follower_id)
        return await _user_payload(info, follower_id)

    @strawberry.mutation(description="Block a user: each disappears from the other's view.")
    async def block(self, info: Info, user_id: strawberry.ID) -> BlockPayload:
        ctx = info.context
        viewer_id, target_id = ctx.require_viewer(), user_id_from(user_id)
        await service.block(ctx.state, ctx.sessions, viewer_id, target_id)
        return BlockPayload(blocked_user_id=user_id)

    @strawberry.mutation
    async def unblock(self, info: Info, user_id: strawberry.ID) -> UserPayload:
        ctx = info.context
        viewer_id, target_id = ctx.require_viewer(), user_id_from(user_id)
        await service.unblock(ctx.state, ctx.sessions, viewer_id, target_id)
        return await _user_payload(info, target_id)


async def _fresh_user(info: Info, user_id: int) -> User:
    # Loaders may hold the pre-mutation row; a mutation payload must show the new state.
    row = await service.load_user(info.context.state, info.context.sessions, user_id)
    # A mutation's reply is a read like any other: nothing of a blocked user leaks.
    if row is None or row.id in await info.context.loaders.accounts.viewer_block_set():
        raise NotFound("No such user")
    return User(row=row)


async def _user_payload(info: Info, user_id: int) -> UserPayload:
    return UserPayload(user=await _fresh_user(info, user_id))


async def _follow_payload(
    info: Info, target_id: int, status: service.FollowStatus
) -> FollowPayload:
    return FollowPayload(user=await _fresh_user(info, target_id), status=follow_status_of(status))
