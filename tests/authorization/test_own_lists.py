"""The viewer's own lists (saved posts, follow requests, close friends), which span
accounts, posts and stories, as every kind of unauthorized viewer."""

from __future__ import annotations

from tests.authorization.audit import PAGE_INFO, SIGNED_IN, UNAUTHORIZED, USERNAMES, Audit, World


async def test_own_lists_are_the_viewers(world: World) -> None:
    """Lists only their owner reads (saved posts, follow requests, close friends) hold the
    viewer's own and nothing of the owner's; a fresh account's are empty, so a list's
    metadata cannot carry the owner's."""
    audit = Audit(world)
    document = f"""
    {{
      viewer {{ id username }}
      followRequests(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ id username }} }} }}
      closeFriends {{ id username }}
      savedPosts(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ id caption }} }} }}
    }}
    """
    for viewer in UNAUTHORIZED:
        answer = await audit.ask(viewer, "own lists", document)
        if viewer not in SIGNED_IN:
            continue
        data = answer.data
        if data["viewer"]["username"] != USERNAMES[viewer]:
            audit.leak(viewer, "viewer", f"someone else: {data['viewer']}")
        if data["savedPosts"]["edges"] or data["followRequests"]["edges"] or data["closeFriends"]:
            audit.leak(viewer, "own lists", f"not empty: {data}")
    audit.assert_none()
