"""Accounts in the authorization audit: users, their profiles and lists, sign-up,
sessions and the follow graph. The probe: the owner's profile and lists, and search."""

from __future__ import annotations

from tests.authorization.audit import (
    BLOCKED_EITHER_WAY,
    GUARDED,
    LOGGED_OUT,
    MUTATIONS,
    OWN,
    OWNER,
    PAGE_INFO,
    POST_LEAN,
    PUBLIC,
    STORIES,
    STORY_FIELDS,
    UNAUTHORIZED,
    USERNAMES,
    Audit,
    Classified,
    World,
    classify,
    classify_connection,
)

PROFILE = "test_the_owners_profile_and_lists"


AUDIT: list[Classified] = [
    *classify(OWNER, OWN, "Query", "viewer followRequests"),
    *classify(GUARDED, PROFILE, "Query", "user searchUsers"),
    # Mutations on someone else's objects refuse as if they did not exist; the rest act
    # on the viewer's own account and content.
    *classify(
        GUARDED,
        MUTATIONS,
        "Mutation",
        "follow unfollow approveFollowRequest denyFollowRequest removeFollower block unblock",
    ),
    *classify(OWNER, OWN, "Mutation", "signUp logIn updateProfile deleteAccount"),
    *classify(OWNER, LOGGED_OUT, "Mutation", "logOut"),
    # Payloads: their objects are the visible ones the mutation acted on.
    *classify(OWNER, OWN, "AuthPayload", "token user"),
    *classify(PUBLIC, MUTATIONS, "BlockPayload", "blockedUserId"),
    *classify(OWNER, OWN, "DeleteAccountPayload", "deletedUserId"),
    *classify(GUARDED, MUTATIONS, "FollowPayload", "user status"),
    *classify(OWNER, LOGGED_OUT, "LogOutPayload", "ok"),
    *classify(GUARDED, MUTATIONS, "UserPayload", "user"),
    # Users: the profile and its counts are public (SECURITY.md, architecture §9); the
    # lists are FORBIDDEN on a private account not followed; a block hides the user.
    *classify(
        PUBLIC,
        PROFILE,
        "User",
        "id username fullName bio website isPrivate createdAt followerCount followingCount "
        "postCount viewerFollows followStatus avatar",
    ),
    *classify(GUARDED, PROFILE, "User", "followers following posts"),
    *classify(GUARDED, STORIES, "User", "stories"),
    *classify_connection("UserConnection", PROFILE),
]


USER_FIELDS = (
    POST_LEAN
    + STORY_FIELDS
    + f"""
fragment U on User {{
  id username fullName bio website isPrivate createdAt followerCount followingCount
  postCount viewerFollows followStatus avatar {{ id url }}
  followers(first: 5) {{ {PAGE_INFO} edges {{ cursor node {{ id username }} }} }}
  following(first: 5) {{ {PAGE_INFO} edges {{ cursor node {{ id username }} }} }}
  stories(first: 10) {{ ...S }}
  posts(first: 5) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
}}
"""
)


PROFILE_DOCUMENT = (
    USER_FIELDS
    + """
query($name: String!) { user(username: $name) { ...U } }
"""
)


async def test_the_owners_profile_and_lists(world: World) -> None:
    audit = Audit(world)
    owner = USERNAMES["owner"]
    for viewer in UNAUTHORIZED:
        answer = await audit.ask(viewer, "user(owner)", PROFILE_DOCUMENT, {"name": owner})
        if viewer == "logged_out":
            continue
        user = answer.data["user"]
        if viewer in BLOCKED_EITHER_WAY:
            if user is not None:
                audit.leak(viewer, "user(owner)", "a blocked user is still shown")
            continue
        if user is None:
            audit.leak(viewer, "user(owner)", "the public profile is missing")
            continue
        for name in ("followers", "following", "posts"):
            if user[name] is not None:
                audit.leak(viewer, f"user(owner).{name}", f"a private list is shown: {user[name]}")
        if user["stories"]:
            audit.leak(viewer, "user(owner).stories", f"stories shown: {user['stories']}")
        if sorted(set(answer.codes)) != ["FORBIDDEN"]:
            audit.leak(viewer, "user(owner)", f"lists not refused as FORBIDDEN: {answer.codes}")
        # The public counts are the owner's real ones (SECURITY.md: profile counts are public).
        expected_status = {"pending": "REQUESTED", "anonymous": None}.get(viewer, "NONE")
        if user["followStatus"] != expected_status or user["viewerFollows"]:
            audit.leak(viewer, "user(owner).followStatus", f"{user['followStatus']}")

        found = await audit.ask(
            viewer,
            "searchUsers(vault)",
            USER_FIELDS + '{ searchUsers(prefix: "vault.o", first: 3) '
            f"{{ {PAGE_INFO} edges {{ cursor node {{ ...U }} }} }} }}",
        )
        if not found.data:
            audit.leak(viewer, "searchUsers", f"no answer: {found.text[:400]}")
            continue
        names = [edge["node"]["username"] for edge in found.data["searchUsers"]["edges"]]
        if owner not in names:
            audit.leak(viewer, "searchUsers", f"the owner is not found: {names}")
    for viewer in BLOCKED_EITHER_WAY:
        found = await audit.ask(
            viewer,
            "searchUsers(vault)",
            '{ searchUsers(prefix: "vault.o", first: 10) '
            f"{{ {PAGE_INFO} edges {{ cursor node {{ id username }} }} }} }}",
        )
        if found.data["searchUsers"]["edges"]:
            audit.leak(viewer, "searchUsers", "a blocked user is found")
    audit.assert_none()
