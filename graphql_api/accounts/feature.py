"""Accounts in the API: sign-up, log-in, profiles, the follow graph, blocks."""

from __future__ import annotations

from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.accounts.schema import AccountMutations, AccountQueries
from graphql_api.accounts.types import User
from graphql_api.features import ApiFeature

FEATURE = ApiFeature(
    name="accounts",
    query=AccountQueries,
    mutation=AccountMutations,
    types=(User,),
    loaders={AccountLoaders: AccountLoaders},
    compiled_fields={
        "Query": frozenset({"user", "viewer"}),
        "User": frozenset(
            {
                "id",
                "username",
                "fullName",
                "bio",
                "website",
                "isPrivate",
                "createdAt",
                "followerCount",
                "followingCount",
                "postCount",
                "posts",
                "avatar",
            }
        ),
    },
)
