"""Paging the home feed when entries the viewer may not see are the newest: a page of
hidden entries still moves the cursor on, and the visible post is found."""

from __future__ import annotations

from db.feed.caches import FeedCaches
from domain.state import AppState
from graphql_api.relay import from_global_id
from tests.helpers import GraphQLClient, create_post, follow, sign_up
from workers.runner import drain_jobs


async def test_a_feed_page_of_hidden_entries_still_moves_on(
    gql: GraphQLClient, state: AppState
) -> None:
    viewer, friend, stranger = (
        await sign_up(gql, "hid.viewer"),
        await sign_up(gql, "hid.friend"),
        await sign_up(gql, "hid.stranger"),
    )
    await follow(gql, viewer, friend)
    real = await create_post(gql, friend, "the one to find")
    await drain_jobs(state)
    assert len(await state.of(FeedCaches).feeds.all_entries(from_global_id(viewer.id)[1])) == 1
    # Entries the viewer may not see (an author they do not follow), newer than the real one.
    hidden = [from_global_id(await create_post(gql, stranger, f"h{n}"))[1] for n in range(14)]
    await state.of(FeedCaches).feeds.push([from_global_id(viewer.id)[1]], hidden)
    query = (
        "query($after: String) { homeFeed(first: 1, after: $after) { "
        "edges { node { id } } pageInfo { hasNextPage endCursor } } }"
    )
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = (await gql(query, {"after": after}, token=viewer.token)).ok()["homeFeed"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        assert page["pageInfo"]["endCursor"] is not None
        after = page["pageInfo"]["endCursor"]
    assert seen == [real]
