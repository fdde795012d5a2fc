"""Compiled plans against the stock executor (graphql_api/compiled.py): the same documents,
viewers and data through an app with plans and one without, byte for byte, covered shapes
answered by a plan, and everything else (errors included) left to the stock executor.
Also what plans rest on: what they read of Strawberry (graphql_api/strawberry_adapter.py),
checked against the installed version, and the rule their resolvers keep
(graphql_api/plan_rules.py), checked for every field a plan may run."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
import strawberry
from graphql import FieldNode, GraphQLObjectType, OperationDefinitionNode, parse
from strawberry.types.nodes import Selection

from domain.media.processing import generate_demo_image
from domain.state import AppState
from graphql_api.compiled import SHARED_COMPILED_FIELDS, Compiler, NotCompiled, PlanInfo, runs
from graphql_api.context import Info, SignedIn
from graphql_api.features import compiled_fields
from graphql_api.plan_rules import PLAN_INFO_ATTRIBUTES, info_misuses
from graphql_api.posts.types import Post
from graphql_api.schema import schema
from graphql_api.strawberry_adapter import (
    field_source,
    graphql_schema,
    name_converter,
    origin_class,
)
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up
from tests.media_helpers import publish, upload_media

FEED = "query { homeFeed(first: 20) { edges { node { id caption author { username } likeCount commentCount viewerHasLiked } } } }"
FEED_FULL = """
query Feed($first: Int, $after: String) {
  homeFeed(first: $first, after: $after) {
    __typename
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { __typename id caption createdAt updatedAt hashtags likeCount
      commentCount viewerHasLiked author { id username fullName bio website isPrivate
      createdAt followerCount followingCount postCount } } }
  }
}
"""
FEED_FRAGMENTS = """
query { homeFeed(first: 3) { ...Page  nodes { ...PostBits id } } }
fragment Page on PostConnection { edges { cursor node { ...PostBits likes: likeCount } } }
fragment PostBits on Post { id caption author { ...Who } }
fragment Who on User { username postCount }
"""
GRID = """
query($u: String!, $first: Int) {
  user(username: $u) { username posts(first: $first) {
    pageInfo { hasNextPage endCursor }
    edges { node { id caption likeCount commentCount viewerHasLiked } } } }
}
"""
DETAIL = """
query($id: ID!) { node(id: $id) { __typename id ... on Post { caption createdAt likeCount
  commentCount viewerHasLiked author { username } } ... on User { username } } }
"""
VIEWER = "query { viewer { id username posts(first: 2) { edges { node { id } } } } }"
FEED_MEDIA = """
query { homeFeed(first: 20) { edges { node { id isReel author { username avatar { url } }
  media { id kind width height aspectRatio placeholder url(width: 640)
    durationSeconds videoUrl } } } } }
"""
COVERED = [FEED, FEED_FULL, FEED_FRAGMENTS, GRID, DETAIL, VIEWER, FEED_MEDIA]
# Not covered, or covered until they meet an error: the stock executor answers.
OTHERS = [
    "query { homeFeed(first: 2) { edges { node { id comments(first: 1) { edges { node { body } } } } } } }",
    "query($on: Boolean!) { homeFeed(first: 2) { edges { node { id caption @include(if: $on) } } } }",
    "query { homeFeed(first: 2) { edges { node { id author { viewerFollows } } } } }",
    'query { searchUsers(prefix: "cx", first: 5) { edges { node { username } } } }',
]


@pytest.fixture
async def network(gql: GraphQLClient, state: AppState) -> dict[str, Any]:
    ana = await sign_up(gql, "cx.ana")
    ben = await sign_up(gql, "cx.ben")
    hidden = await sign_up(gql, "cx.hidden", private=True)
    blocker = await sign_up(gql, "cx.blocker")
    posts: dict[str, list[str]] = {}
    for account in (ana, ben, hidden, blocker):
        posts[account.username] = [
            await create_post(gql, account, f"{account.username} post {n} #cx #n{n}")
            for n in range(4)
        ]
    # A photo on ben's newest post and as his avatar: media fields have values to compare.
    photo = generate_demo_image(seed=5, width=800, height=600)
    media = [(await upload_media(gql, state, ben, photo))["id"] for _ in range(2)]
    published = await publish(gql, ben, media[:1], "ben's photo #cx")
    posts["cx.ben"].append(published.ok()["createPost"]["post"]["id"])
    await gql(
        "mutation($m: ID) { setAvatar(mediaId: $m) { id } }", {"m": media[1]}, token=ben.token
    )
    await follow(gql, ana, ben)
    await follow(gql, ana, blocker)
    await follow(gql, ben, ana)
    await follow(gql, ben, hidden)  # a request: hidden is private
    for post_id in posts["cx.ben"][:2]:
        await gql(
            "mutation($p: ID!) { likePost(postId: $p) { post { id } } }",
            {"p": post_id},
            token=ana.token,
        )
    await gql(
        'mutation($p: ID!) { addComment(postId: $p, body: "nice") { comment { id } } }',
        {"p": posts["cx.ben"][0]},
        token=ana.token,
    )
    await gql(
        "mutation($u: ID!) { block(userId: $u) { blockedUserId } }",
        {"u": ana.id},
        token=blocker.token,
    )
    return {"accounts": [ana, ben, hidden, blocker], "posts": posts}


def _cases(network: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    posts: dict[str, list[str]] = network["posts"]
    accounts: list[Account] = network["accounts"]
    cases: list[tuple[str, dict[str, Any]]] = [(FEED, {}), (VIEWER, {})]
    cases += [(FEED_FULL, {"first": n}) for n in (1, 2, 20)]
    cases += [(FEED_FRAGMENTS, {}), (FEED_MEDIA, {})]
    for account in accounts:
        cases.append((GRID, {"u": account.username, "first": 2}))
        cases.append((DETAIL, {"id": posts[account.username][0]}))
        cases.append((DETAIL, {"id": account.id}))
    cases += [
        (GRID, {"u": "nobody-here", "first": 2}),
        (GRID, {"u": "cx.ben", "first": 500}),  # BAD_USER_INPUT from the resolver
        (DETAIL, {"id": "not-an-id"}),
        (FEED_FULL, {"first": 2, "after": "forged-cursor"}),
        (FEED_FULL, {"first": "two"}),  # a variable that does not coerce
    ]
    cases += [(document, {"on": True}) for document in OTHERS]
    return cases


async def _post(client: httpx.AsyncClient, body: bytes, token: str | None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await client.post("/graphql", content=body, headers=headers)
    return response.status_code, response.content


async def test_plans_answer_byte_for_byte_as_the_stock_executor(
    gql: GraphQLClient,
    network: dict[str, Any],
    tuned_gql: Callable[..., Awaitable[tuple[GraphQLClient, AppState]]],
) -> None:
    compiled, _ = await tuned_gql(rate_limits=False, compiled_execution="on")
    stock, _ = await tuned_gql(rate_limits=False, compiled_execution="off")
    viewers: list[str | None] = [None, *(account.token for account in network["accounts"])]
    answered = 0
    checked = 0
    for document, variables in _cases(network):
        body = orjson.dumps({"query": document, "variables": variables})
        for token in viewers:
            for first, second in ((compiled, stock), (stock, compiled)):  # cold, then warm
                before = runs.answered
                one = await _post(first.http, body, token)
                two = await _post(second.http, body, token)
                assert one == two, (document, variables, token)
                answered += runs.answered - before
                checked += 1
                if document in OTHERS:
                    assert runs.answered == before, document
                elif b'"errors"' not in one[1]:
                    # A covered shape that answers without errors is the plan's, whatever
                    # the values (null avatars, empty media lists) of this viewer's page.
                    assert runs.answered == before + 1, (document, variables, token)
    # The covered shapes really ran as plans, for every viewer who may see them.
    assert answered >= 100, (answered, checked)


async def test_plans_keep_visibility_and_errors(
    gql: GraphQLClient, network: dict[str, Any]
) -> None:
    ana, ben, hidden, _ = network["accounts"]
    feed = (await gql(FEED, token=ana.token)).ok()["homeFeed"]["edges"]
    authors = {edge["node"]["author"]["username"] for edge in feed}
    # Ana follows ben and the blocker, who blocked her: the blocker's posts are gone.
    assert authors == {"cx.ana", "cx.ben"}
    assert sum(edge["node"]["viewerHasLiked"] for edge in feed) == 2
    private = await gql(GRID, {"u": hidden.username, "first": 2}, token=ben.token)
    assert private.codes == ["FORBIDDEN"]
    assert private.data == {"user": None} or private.data["user"]["posts"] is None
    anonymous = await gql(FEED)
    assert anonymous.codes == ["UNAUTHENTICATED"]
    blocked = await gql(DETAIL, {"id": network["posts"]["cx.blocker"][0]}, token=ana.token)
    assert blocked.codes == ["NOT_FOUND"]


async def test_the_suite_checks_plans_beside_the_stock_executor(
    gql: GraphQLClient, network: dict[str, Any]
) -> None:
    """The suite runs in ``verify`` mode (tests/conftest.py): each covered document is
    answered by the stock executor and run by its plan too, which must agree."""
    ana = network["accounts"][0]
    before = runs.answered
    (await gql(FEED_FULL, {"first": 5}, token=ana.token)).ok()
    assert runs.answered == before + 1
    (await gql(OTHERS[0], token=ana.token)).ok()
    assert runs.answered == before + 1


async def test_warm_pages_cost_few_round_trips_and_no_sql(
    gql: GraphQLClient, network: dict[str, Any]
) -> None:
    """A page's reads are planned together (domain/posts/pages.py): the session with the
    activity mark and the rate limit, then the feed chunk with the large-account set and
    the blocks, the rows with counters and flags, the authors with follows."""
    ana, ben = network["accounts"][:2]
    post_id = network["posts"]["cx.ben"][0]
    pages = [
        (FEED, {}, 4),
        (FEED_MEDIA, {}, 5),  # + the avatars' media rows
        # + the username, the user row, the viewer's blocks and the author's post ids.
        (GRID, {"u": ben.username, "first": 4}, 7),
        (DETAIL, {"id": post_id}, 3),
    ]
    for document, variables, round_trips in pages:
        (await gql(document, variables, token=ana.token)).ok()  # fills the caches
        warm = await gql(document, variables, token=ana.token)
        warm.ok()
        assert warm.work.sql_statements == 0, (document, warm.work.statements)
        assert warm.work.redis_round_trips <= round_trips, (document, warm.work)


# What plans rest on ----------------------------------------------------------------------


def _object_type(type_name: str) -> GraphQLObjectType:
    found = graphql_schema(schema).get_type(type_name)
    assert isinstance(found, GraphQLObjectType), type_name
    return found


def test_the_adapter_reads_what_strawberry_keeps() -> None:
    """Each private or undocumented part of Strawberry a plan reads, read through the
    adapter from the real schema: an upgrade that moves one fails here."""
    names = name_converter(schema)
    assert set(graphql_schema(schema).type_map) >= {"Query", "Post", "User", "PostConnection"}
    assert origin_class(_object_type("Post")) is Post

    like_count = field_source(_object_type("Post"), "likeCount", names)
    assert like_count is not None
    assert like_count.function is not None
    assert like_count.function.__qualname__ == "Post.like_count"
    assert (like_count.info_parameter, like_count.arguments) == ("info", {})

    caption = field_source(_object_type("Post"), "caption", names)
    assert caption is not None
    assert caption.function is not None
    assert caption.info_parameter is None

    posts = field_source(_object_type("User"), "posts", names)
    assert posts is not None
    assert posts.arguments == {"first": "first", "after": "after"}

    home_feed = field_source(_object_type("Query"), "homeFeed", names)
    assert home_feed is not None
    assert home_feed.permissions == (SignedIn,)

    edges = field_source(_object_type("PostConnection"), "edges", names)
    assert edges is not None
    assert (edges.function, edges.python_name) == (None, "edges")
    assert field_source(_object_type("Post"), "noSuchField", names) is None


@strawberry.type
class _Leaf:
    name: str = "leaf"


# What Strawberry handed the probe's resolver as ``info.selected_fields``.
_PROBE_SEEN: list[list[Selection]] = []


@strawberry.type
class _Probe:
    @strawberry.field
    def leaf(self, info: strawberry.Info) -> _Leaf:
        _PROBE_SEEN.append(info.selected_fields)
        return _Leaf()


@strawberry.type
class _ProbeQuery:
    @strawberry.field
    def probe(self) -> _Probe:
        return _Probe()


async def test_plans_hand_resolvers_selected_fields_as_strawberry_does() -> None:
    """What a plan hands a resolver as ``info.selected_fields`` equals what Strawberry
    hands it, for a field with an alias and nested fields (resolvers read its names)."""
    probe_schema = strawberry.Schema(query=_ProbeQuery)
    document = "{ probe { renamed: leaf { name other: name } } }"
    _PROBE_SEEN.clear()
    result = await probe_schema.execute(document)
    assert result.errors is None
    (strawberry_made,) = _PROBE_SEEN

    parsed = parse(document)
    compiler = Compiler(graphql_schema(probe_schema), name_converter(probe_schema), parsed)
    operation = parsed.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    probe = operation.selection_set.selections[0]
    assert isinstance(probe, FieldNode)
    assert probe.selection_set is not None
    leaf = probe.selection_set.selections[0]
    assert isinstance(leaf, FieldNode)
    assert [compiler.selected(leaf)] == strawberry_made


def test_plan_info_offers_what_the_rule_allows() -> None:
    assert {field.name for field in dataclasses.fields(PlanInfo)} == PLAN_INFO_ATTRIBUTES


def test_listed_resolvers_keep_to_what_a_plan_offers() -> None:
    """Every resolver of a field a plan may run reads ``info.context`` and
    ``info.selected_fields`` only, down every helper it hands ``info`` to."""
    names = name_converter(schema)
    built = graphql_schema(schema)
    checked = 0
    for type_name, field_names in compiled_fields(SHARED_COMPILED_FIELDS).items():
        object_type = built.get_type(type_name)
        assert isinstance(object_type, GraphQLObjectType), type_name
        for field_name in sorted(field_names):
            source = field_source(object_type, field_name, names)
            assert source is not None, (type_name, field_name)
            if source.function is None or source.info_parameter is None:
                continue
            checked += 1
            assert info_misuses(source.function, source.info_parameter) == (), (
                type_name,
                field_name,
            )
    assert checked >= 15  # homeFeed, node, a post's counters and author, User.posts ...


def _reads_selected(info: Info) -> int:
    return len(info.selected_fields)


def _reads_path(info: Info) -> object:
    return info.path


class _Resolvers:
    def keeps_to_the_rule(self, info: Info) -> int:
        return _reads_selected(info) + (info.context.loaders.viewer_id or 0)

    def reads_variables(self, info: Info) -> object:
        return info.variable_values

    def hands_info_to_a_helper_that_reads_its_path(self, info: Info) -> object:
        return _reads_path(info)

    def hands_info_to_a_method_that_reads_its_path(self, info: Info) -> object:
        return self._reads_path(info)

    def _reads_path(self, info: Info) -> object:
        return info.path

    def hands_info_to_a_function_it_was_given(
        self, info: Info, use: Callable[[Info], object]
    ) -> object:
        return use(info)

    def keeps_info_as_a_value(self, info: Info) -> object:
        kept = [info]
        return kept


def test_the_rule_check_catches_a_resolver_reaching_further() -> None:
    assert info_misuses(_Resolvers.keeps_to_the_rule, "info") == ()
    cases: list[tuple[Callable[..., object], str]] = [
        (_Resolvers.reads_variables, "reads info.variable_values"),
        (_Resolvers.hands_info_to_a_helper_that_reads_its_path, "reads info.path"),
        (_Resolvers.hands_info_to_a_method_that_reads_its_path, "reads info.path"),
        (_Resolvers.hands_info_to_a_function_it_was_given, "not checked"),
        (_Resolvers.keeps_info_as_a_value, "as a value"),
    ]
    for breaking, why in cases:
        found = info_misuses(breaking, "info")
        assert len(found) == 1, (breaking.__name__, found)
        assert why in found[0], (breaking.__name__, found)


@strawberry.type(name="Query")
class _KeepingQuery:
    @strawberry.field
    def greeting(self, info: strawberry.Info) -> str:
        return str(len(info.selected_fields))


@strawberry.type(name="Query")
class _BreakingQuery:
    @strawberry.field
    def greeting(self, info: strawberry.Info) -> str:
        return str(info.path.key)


def test_a_listed_resolver_breaking_the_rule_is_not_compiled() -> None:
    """Listed or not, a field whose resolver reads more of ``info`` than a plan offers is
    left to the stock executor (and logged), never run by a plan."""
    document = parse("{ greeting }")
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    compiled = []
    for query in (_KeepingQuery, _BreakingQuery):
        probe_schema = strawberry.Schema(query=query)
        compiler = Compiler(graphql_schema(probe_schema), name_converter(probe_schema), document)
        compiler.compiled_fields = {"Query": frozenset({"greeting"})}
        try:
            compiler.compile(operation)
        except NotCompiled:
            compiled.append(False)
        else:
            compiled.append(True)
    assert compiled == [True, False]
