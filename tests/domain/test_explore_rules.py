"""Explore rules, called on the domain directly (domain/explore/): candidates leave out the
viewer's own posts, accounts they follow, private, blocked and blocking accounts, and what
they already liked, saved or commented on; authors are spread out; an ALS model trained
on the CPU recovers tastes, and folds a new person in without a retrain.

The log behind trending and training holds every other domain test's interactions too:
answers are checked among this test's posts only. The model lives in Redis and object
storage for every process, so the model tests use a state of their own and leave no
model behind for the rest of the package."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from db.accounts.records import UserRecord as User
from db.explore.store import MODEL_KEY, MODEL_PREFIX
from db.session import ShardSessions
from domain.accounts import blocks
from domain.explore import explore
from domain.explore.training import train
from domain.posts import comments, likes, saved
from domain.state import AppState
from domain.visibility import direct
from recommender.model import ALSConfig
from tests.domain.support import follow_approved, new_post, new_user

SMALL_MODEL = ALSConfig(factors=4, iterations=20, regularization=0.1, alpha=5.0, seed=1)


async def drop_models(state: AppState) -> None:
    store = state.runtime.object_store
    await state.runtime.redis.delete(MODEL_KEY)
    await store.delete(await store.list_keys(prefix=MODEL_PREFIX))


@pytest.fixture
async def modelled(state: AppState) -> AsyncIterator[AppState]:
    """A state of its own (as another process has) for a test that trains a model; the
    model is deleted afterwards, before the package's state could load it."""
    await drop_models(state)
    own = AppState(state.runtime)
    try:
        yield own
    finally:
        await drop_models(state)
        own.shutdown()


async def like_all(
    state: AppState, sessions: ShardSessions, user: User, post_ids: Sequence[int]
) -> None:
    for post_id in post_ids:
        await likes.set_post_like(state, sessions, user.id, post_id, liked=True)


async def explore_of(
    state: AppState, sessions: ShardSessions, viewer: User, among: Sequence[int]
) -> list[int]:
    """The viewer's Explore, as far as it holds ``among``."""
    wanted = set(among)
    ranked = await explore.ranked_post_ids(
        state, sessions, direct(state, sessions, viewer.id), viewer.id
    )
    return [post_id for post_id in ranked if post_id in wanted]


async def test_explore_leaves_out_what_the_viewer_must_not_or_need_not_see(
    state: AppState, sessions: ShardSessions
) -> None:
    viewer = await new_user(state, sessions, "explorer")
    names = ("stranger", "followed", "private", "blocker", "blocked", "liked", "saved", "said")
    authors = {
        name: await new_user(state, sessions, name, private=name == "private") for name in names
    }
    fans = [await new_user(state, sessions, f"fan{n}") for n in range(3)]
    for fan in fans:
        await follow_approved(state, sessions, fan, authors["private"])
    own = await new_post(state, sessions, viewer, "mine")
    made = {
        name: (await new_post(state, sessions, author, name)).id for name, author in authors.items()
    }
    everything = [own.id, *made.values()]
    for fan in fans:
        await like_all(state, sessions, fan, everything)

    await follow_approved(state, sessions, viewer, authors["followed"])
    await blocks.block(state, sessions, authors["blocker"].id, viewer.id)
    await blocks.block(state, sessions, viewer.id, authors["blocked"].id)
    await like_all(state, sessions, viewer, [made["liked"]])
    await saved.set_saved(state, sessions, viewer.id, made["saved"], saved=True)
    await comments.add_comment(state, sessions, viewer.id, made["said"], body="nice", reply_to=None)
    # Trending is kept for minutes: make it from the log as it is now.
    trending = await explore.refresh_trending(state, sessions)
    assert set(everything) <= set(trending)

    assert await explore_of(state, sessions, viewer, everything) == [made["stranger"]]
    suggested = await explore.suggested_account_ids(
        state, sessions, direct(state, sessions, viewer.id), viewer.id
    )
    assert authors["stranger"].id in suggested
    assert not {author.id for name, author in authors.items() if name != "stranger"} & set(
        suggested
    )
    # Another viewer's rules are theirs: a newcomer gets all of it but the private post.
    newcomer = await new_user(state, sessions, "newcomer")
    assert set(await explore_of(state, sessions, newcomer, everything)) == set(everything) - {
        made["private"]
    }
    # A fan who liked everything has nothing of it left to discover.
    assert await explore_of(state, sessions, fans[0], everything) == []


def test_authors_are_spread_out_and_a_prefix_places_a_prefix() -> None:
    author_of = {post: post // 10 for post in range(100)}
    ranked = [0, 1, 10, 11, 20, 30, 40, 50, 60, 70, 80, 90]
    spread = explore.spread_authors(ranked, author_of)
    # Each author's second post waits until five others came between.
    assert spread == [0, 10, 20, 30, 40, 50, 1, 11, 60, 70, 80, 90]
    for index, post in enumerate(spread):
        later = spread[index + 1 : index + explore.AUTHOR_SPACING]
        assert author_of[post] not in {author_of[other] for other in later}
    # Placed from a prefix, without the posts still waiting: a prefix of the whole, so
    # pages never repeat or skip a post.
    partial = explore.spread_authors(ranked[:6], author_of, complete=False)
    assert partial == [0, 10, 20, 30]
    assert spread[: len(partial)] == partial


@dataclass
class Tastes:
    """Two tastes: each fan likes all but one of their own cluster's six posts."""

    posts: dict[str, list[int]] = field(default_factory=dict)
    fans: dict[str, list[User]] = field(default_factory=dict)

    def cluster_of(self, post_id: int) -> str | None:
        return next((name for name, ids in self.posts.items() if post_id in ids), None)

    @property
    def every_post(self) -> list[int]:
        return [post_id for ids in self.posts.values() for post_id in ids]


async def plant_tastes(state: AppState, sessions: ShardSessions) -> Tastes:
    tastes = Tastes()
    for name in ("cats", "cars"):
        authors = [await new_user(state, sessions, f"{name}{n}") for n in range(2)]
        tastes.posts[name] = [
            (await new_post(state, sessions, author, f"{name} {n}")).id
            for author in authors
            for n in range(3)
        ]
        tastes.fans[name] = [await new_user(state, sessions, f"{name}fan{n}") for n in range(5)]
        for index, fan in enumerate(tastes.fans[name]):
            await like_all(
                state, sessions, fan, [p for n, p in enumerate(tastes.posts[name]) if n != index]
            )
    return tastes


async def test_a_model_trained_on_the_cpu_recovers_tastes_and_folds_in_a_newcomer(
    modelled: AppState, sessions: ShardSessions
) -> None:
    state = modelled
    tastes = await plant_tastes(state, sessions)
    run = await train(state, config=SMALL_MODEL, use_gpu=False)
    assert run is not None
    assert run.device == "cpu"
    assert run.report.losses, "the loss was computed each iteration"

    for name, fans in tastes.fans.items():
        for index, fan in enumerate(fans):
            shown = await explore_of(state, sessions, fan, tastes.every_post)
            # First, the one post of their own taste they have not liked yet.
            assert shown[0] == tastes.posts[name][index], (name, index, shown)
            other = "cars" if name == "cats" else "cats"
            scores = await explore.taste_scores(
                state, fan.id, [tastes.posts[name][index], *tastes.posts[other]]
            )
            assert scores[0] > max(scores[1:]), (name, index, scores)

    # More like this: a cat post's nearest posts are cat posts.
    outsider = await new_user(state, sessions, "curious")
    similar = await explore.similar_post_ids(
        state, sessions, direct(state, sessions, outsider.id), tastes.posts["cats"][0]
    )
    planted = [post_id for post_id in similar if tastes.cluster_of(post_id)]
    assert [tastes.cluster_of(post_id) for post_id in planted[:3]] == ["cats"] * 3

    # A newcomer's first likes shape their taste at once, without a retrain.
    newcomer = await new_user(state, sessions, "newbie")
    unliked_cars = tastes.posts["cars"][2:]
    assert set(await explore.taste_scores(state, newcomer.id, tastes.every_post)) == {0.0}
    await like_all(state, sessions, newcomer, tastes.posts["cars"][:2])
    cars = await explore.taste_scores(state, newcomer.id, unliked_cars)
    cats = await explore.taste_scores(state, newcomer.id, tastes.posts["cats"])
    # On average, and at the top: with four factors and a few dozen likes, a single cat
    # post can outscore a single car post (it did, on a worker that ran this test alone).
    assert sum(cars) / len(cars) > 2 * sum(cats) / len(cats), (cars, cats)
    assert max(cars) > max(cats), (cars, cats)
    shown = await explore_of(state, sessions, newcomer, tastes.every_post)
    assert tastes.cluster_of(shown[0]) == "cars"
