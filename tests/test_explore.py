"""Explore end to end on real PostgreSQL, Redis and SeaweedFS: interactions logged from
events after commit, a trained ALS model that recovers planted taste clusters where
popularity does not, every exclusion through the visibility policy, fold-in of a new
person without a retrain, and a model swapped into a running process."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from domain.explore import models as served_models
from domain.explore.explore import spread_authors
from domain.explore.models import ServedModel
from domain.explore.training import train
from domain.state import AppState
from recommender.model import ALSConfig
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up

EXPLORE = """
query($first: Int, $after: String) {
  explore(first: $first, after: $after) {
    edges { cursor node { id author { username } } }
    pageInfo { hasNextPage }
  }
}
"""
LIKE = "mutation($p: ID!) { likePost(postId: $p) { post { id } } }"
SAVE = "mutation($p: ID!) { savePost(postId: $p) { post { id } } }"
SMALL_MODEL = ALSConfig(factors=4, iterations=20, regularization=0.1, alpha=5.0, seed=1)


async def explore_of(gql: GraphQLClient, viewer: Account, first: int = 24) -> list[dict[str, Any]]:
    edges = (await gql(EXPLORE, {"first": first}, token=viewer.token)).ok()["explore"]["edges"]
    return [edge["node"] for edge in edges]


async def like(gql: GraphQLClient, viewer: Account, post_ids: Sequence[str]) -> None:
    for post_id in post_ids:
        (await gql(LIKE, {"p": post_id}, token=viewer.token)).ok()


class Clusters:
    """Three tastes: each cluster's people like most posts of its own two authors, and
    everyone likes a celebrity's posts, the most popular items by far."""

    def __init__(self) -> None:
        self.authors: dict[str, list[Account]] = {}
        self.posts: dict[str, list[str]] = {}
        self.people: dict[str, list[Account]] = {}
        self.celebrity_posts: list[str] = []

    def cluster_of(self, username: str) -> str | None:
        for name, authors in self.authors.items():
            if username in {author.username for author in authors}:
                return name
        return None


@pytest.fixture
async def clusters(gql: GraphQLClient) -> Clusters:
    planted = Clusters()
    celebrity = await sign_up(gql, "celebrity")
    planted.celebrity_posts = [await create_post(gql, celebrity, f"hit {n}") for n in range(3)]
    for name in ("cats", "cars", "cakes"):
        planted.authors[name] = [await sign_up(gql, f"{name}{n}") for n in range(2)]
        planted.posts[name] = [
            await create_post(gql, author, f"{name} {n}")
            for author in planted.authors[name]
            for n in range(4)
        ]
        planted.people[name] = [await sign_up(gql, f"{name}.fan{n}") for n in range(6)]
        for index, person in enumerate(planted.people[name]):
            # Each fan leaves out two of the cluster's eight posts, one of each author.
            own = [
                post
                for number, post in enumerate(planted.posts[name])
                if number not in (index % 4, index % 4 + 4)
            ]
            await like(gql, person, own + planted.celebrity_posts)
    return planted


@pytest.mark.slow
async def test_explore_recovers_planted_tastes_where_popularity_does_not(
    gql: GraphQLClient, state: AppState, clusters: Clusters
) -> None:
    before = await explore_of(gql, clusters.people["cats"][0])
    run = await train(state, config=SMALL_MODEL)
    assert run is not None
    assert run.device == "cpu"
    assert run.report.losses  # the loss was computed each iteration
    for name, people in clusters.people.items():
        for person in people:
            page = await explore_of(gql, person, first=2)
            # The two posts of its own cluster this fan has not liked, first.
            assert [clusters.cluster_of(node["author"]["username"]) for node in page] == [
                name,
                name,
            ], (person.username, page)
    # More like this: a cat post's neighbours are cat posts.
    similar = (
        await gql(
            "query($p: ID!) { similarPosts(postId: $p, first: 3) { nodes { author { username } } } }",
            {"p": clusters.posts["cats"][0]},
            token=clusters.people["cars"][0].token,
        )
    ).ok()["similarPosts"]["nodes"]
    assert [clusters.cluster_of(node["author"]["username"]) for node in similar] == ["cats"] * 3
    suggested = (
        await gql(
            "{ suggestedAccounts(first: 2) { username } }", token=clusters.people["cakes"][1].token
        )
    ).ok()["suggestedAccounts"]
    assert sorted(user["username"] for user in suggested) == ["cakes0", "cakes1"]
    too_many = await gql(
        "{ suggestedAccounts(first: 500) { username } }", token=clusters.people["cakes"][1].token
    )
    assert too_many.codes == ["BAD_USER_INPUT"]
    # Before training, the same fan got trending: popularity, whatever the taste, and
    # the celebrity's posts (already liked) were left out there too.
    assert {clusters.cluster_of(node["author"]["username"]) for node in before[:6]} != {"cats"}
    assert not {node["id"] for node in before} & set(clusters.celebrity_posts)


@pytest.mark.slow
async def test_a_new_persons_first_likes_shape_their_explore_without_a_retrain(
    gql: GraphQLClient, state: AppState, clusters: Clusters
) -> None:
    assert await train(state, config=SMALL_MODEL) is not None
    newcomer = await sign_up(gql, "newcomer")
    trending = [node["author"]["username"] for node in await explore_of(gql, newcomer)]
    # Trending: the celebrity first, then every taste.
    assert clusters.cluster_of(trending[0]) is None
    assert {clusters.cluster_of(name) for name in trending} >= {"cats", "cars", "cakes"}
    await like(gql, newcomer, clusters.posts["cakes"][:2])
    folded = [
        clusters.cluster_of(node["author"]["username"])
        for node in await explore_of(gql, newcomer, first=4)
    ]
    # Before: the celebrity first (trending); now, the newcomer's taste.
    assert folded[:2] == ["cakes", "cakes"]


@pytest.mark.slow
async def test_explore_leaves_out_what_the_viewer_must_not_or_need_not_see(
    gql: GraphQLClient,
) -> None:
    viewer = await sign_up(gql, "viewer")
    names = ("stranger", "followed", "private", "blocker", "blocked", "liked", "saved")
    authors = {name: await sign_up(gql, f"x.{name}", private=name == "private") for name in names}
    fans = [await sign_up(gql, f"x.fan{n}") for n in range(3)]
    for fan in fans:
        await follow(gql, fan, authors["private"])
        approved = await gql(
            "mutation($u: ID!) { approveFollowRequest(userId: $u) { user { id } } }",
            {"u": fan.id},
            token=authors["private"].token,
        )
        approved.ok()
    own_post = await create_post(gql, viewer, "mine")
    posts = {name: await create_post(gql, author, name) for name, author in authors.items()}
    for fan in fans:
        await like(gql, fan, [*posts.values(), own_post])

    await follow(gql, viewer, authors["followed"])
    (
        await gql(
            "mutation($u: ID!) { block(userId: $u) { blockedUserId } }",
            {"u": viewer.id},
            token=authors["blocker"].token,
        )
    ).ok()
    (
        await gql(
            "mutation($u: ID!) { block(userId: $u) { blockedUserId } }",
            {"u": authors["blocked"].id},
            token=viewer.token,
        )
    ).ok()
    await like(gql, viewer, [posts["liked"]])
    (await gql(SAVE, {"p": posts["saved"]}, token=viewer.token)).ok()

    shown = [node["id"] for node in await explore_of(gql, viewer)]
    assert shown == [posts["stranger"]]
    # Someone else's rules are theirs: a newcomer gets all of it but the private post.
    newcomer = await sign_up(gql, "x.newcomer")
    other = {node["id"] for node in await explore_of(gql, newcomer)}
    assert other == {own_post} | {post for name, post in posts.items() if name != "private"}
    # A fan who liked everything has nothing left to discover.
    assert await explore_of(gql, fans[0]) == []


@pytest.mark.slow
async def test_a_model_trained_elsewhere_is_served_without_a_restart(
    gql: GraphQLClient, state: AppState, clusters: Clusters, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served_models, "CHECK_INTERVAL_SECONDS", 0.0)
    first = await train(state, config=SMALL_MODEL)
    assert first is not None
    served = await state.of(ServedModel).current()
    assert served is not None
    assert served.version == first.version
    # A training run by another process (the CLI, a worker) with its own state.
    elsewhere = AppState(state.runtime)
    second = await train(elsewhere, config=SMALL_MODEL)
    assert second is not None
    assert second.version != first.version
    swapped = await state.of(ServedModel).current()
    assert swapped is not None
    assert swapped.version == second.version


def test_authors_are_spread_out_whatever_the_page_size() -> None:
    author_of = {post: post // 10 for post in range(100)}
    # Author 0 has the three best posts; eight other authors follow.
    ranked = [0, 1, 2, 10, 20, 30, 40, 50, 60, 70, 80]
    spread = spread_authors(ranked, author_of)
    assert spread == [0, 10, 20, 30, 40, 50, 1, 60, 70, 80, 2]
    # Too few other authors: the rest still come, at the end, in their order.
    assert spread_authors([0, 1, 2, 10], author_of) == [0, 10, 1, 2]


@pytest.mark.slow
async def test_the_reels_feed_ranks_with_the_model_once_there_is_one(
    gql: GraphQLClient, state: AppState, clusters: Clusters
) -> None:
    from tests.test_stories_reels import REELS, make_reel

    reels = {
        name: await make_reel(gql, state, clusters.authors[name][0], seed=number)
        for number, name in enumerate(("cats", "cars"))
    }
    # As engaging as each other: six likes each, from the reel's own cluster.
    for name, reel in reels.items():
        for person in clusters.people[name]:
            (await gql(LIKE, {"p": reel}, token=person.token)).ok()

    async def first_reel(person: Account) -> str:
        edges = (await gql(REELS, token=person.token)).ok()["reelsFeed"]["edges"]
        author: str = edges[0]["node"]["author"]["username"]
        return author

    assert await train(state, config=SMALL_MODEL) is not None
    assert await first_reel(clusters.people["cats"][1]) == "cats0"
    assert await first_reel(clusters.people["cars"][1]) == "cars0"


@pytest.mark.slow
async def test_paging_through_explore_gives_the_whole_list_once(
    gql: GraphQLClient, clusters: Clusters
) -> None:
    viewer = clusters.people["cats"][2]
    whole = [node["id"] for node in await explore_of(gql, viewer, first=100)]
    paged: list[str] = []
    after = None
    while True:
        page = (await gql(EXPLORE, {"first": 3, "after": after}, token=viewer.token)).ok()
        edges = page["explore"]["edges"]
        paged += [edge["node"]["id"] for edge in edges]
        if not page["explore"]["pageInfo"]["hasNextPage"]:
            break
        after = edges[-1]["cursor"]
    assert len(whole) > 12
    assert paged == whole
