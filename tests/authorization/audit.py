"""The authorization audit's framework, shared by every module of this package.

Every object type and field of the schema is classified in the ``AUDIT`` of the module
named after the feature that owns it (``test_<feature>.py``), with the probe that
exercises it; ``test_classification.py`` merges them, and a field no module knows (or two
modules classify) fails it. The probes run against one world (``conftest.py``), built once
for the package through the real API: a private owner with posts, media, comments, likes,
saves, stories (one for everyone, one for close friends) and their viewers, threads with
messages and reactions, notifications and a follow request; and every kind of viewer who
must not see it: anonymous, a stranger, a user the owner blocked, a user who blocked the
owner, a removed follower, a pending requester, a follower left off the close-friends
list, a member removed from a group, and a logged-out session. Every answer is searched,
as raw text, for the strings and ids planted in the world; counts, cursors and
``hasNextPage`` must not reveal what is hidden, and refusals are typed and say no more
than they would for an id that names nothing. Leaks are collected, not stopped at: a
failure lists every one.
"""

from __future__ import annotations

import enum
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from db.ids import compose_id, shard_of
from domain.state import AppState
from graphql_api.relay import from_global_id, to_global_id
from tests.helpers import Account, GraphQLClient

# The schema's registry ------------------------------------------------------------------


class Exposure(enum.Enum):
    # Safe for anyone who may see the object it is a field of.
    PUBLIC = "public"
    # Only the owner learns it: the author, the recipient, the viewer's own list.
    PRIVATE_TO_OWNER = "private to owner"
    # Objects (or refusals) each checked again by the visibility policy on the way out.
    GUARDED_BY_PARENT = "guarded by parent"


PUBLIC = Exposure.PUBLIC
OWNER = Exposure.PRIVATE_TO_OWNER
GUARDED = Exposure.GUARDED_BY_PARENT


# Probes that the fields of several features name: the test functions, each in the module
# named for what it probes, that exercise a field. A probe only one feature's fields name
# is declared in that feature's module.
LOOKUPS = "test_lookups_by_id_reveal_nothing"
FEEDS = "test_feeds_search_and_discovery"
MUTATIONS = "test_mutations_on_hidden_objects_refuse_and_return_nothing"
STORIES = "test_stories_and_their_views"
LIVE = "test_live_events_reach_no_unauthorized_socket"
LOGGED_OUT = "test_a_logged_out_token_reads_nothing"
OWN = "test_own_lists_are_the_viewers"


@dataclass(frozen=True)
class Classified:
    """One row of a module's ``AUDIT``: a field (``name``: ``Type.field``), how far it is
    exposed, and the name of the test in this package that shows it leaks nothing."""

    name: str
    exposure: Exposure
    probe: str


def classify(exposure: Exposure, probe: str, type_name: str, fields: str) -> list[Classified]:
    return [Classified(f"{type_name}.{name}", exposure, probe) for name in fields.split()]


def classify_connection(type_name: str, probe: str) -> list[Classified]:
    """A connection's plumbing: its nodes are checked one by one; its page info is
    checked by ``empty_pages`` on every answer."""
    return [
        *classify(GUARDED, probe, type_name, "edges nodes"),
        *classify(PUBLIC, probe, type_name, "pageInfo"),
        *classify(GUARDED, probe, type_name.replace("Connection", "Edge"), "node"),
        *classify(PUBLIC, probe, type_name.replace("Connection", "Edge"), "cursor"),
    ]


# The world -----------------------------------------------------------------------------

# Everyone who must not see the owner's private content, with the token they call with.
UNAUTHORIZED = (
    "anonymous",
    "stranger",
    "blocked",
    "blocker",
    "removed",
    "pending",
    "former",
    "logged_out",
)
# Signed in, and not logged out: those who can call what needs a viewer.
SIGNED_IN = tuple(name for name in UNAUTHORIZED if name not in ("anonymous", "logged_out"))
BLOCKED_EITHER_WAY = frozenset({"blocked", "blocker"})
EVERYONE_UNAUTHORIZED = frozenset(UNAUTHORIZED)
ALLOWED_REFUSALS = {"NOT_FOUND", "FORBIDDEN", "UNAUTHENTICATED"}

USERNAMES = {
    "owner": "vault.owner",
    "insider": "vault.insider",
    "non_close": "vault.nonclose",
    "pal": "pal.public",
    "stranger": "outsider",
    "blocked": "shunned",
    "blocker": "grudge",
    "removed": "exfollower",
    "pending": "hopeful",
    "former": "exmember",
    "logged_out": "gone",
}


@dataclass
class World:
    http: httpx.AsyncClient
    gql: GraphQLClient
    state: AppState
    accounts: dict[str, Account]
    ids: dict[str, str]
    # A planted string or id -> the viewers who must never read it.
    secrets: dict[str, frozenset[str]] = field(default_factory=dict)
    # Media URL paths (with their signatures) as the owner gets them.
    media_paths: dict[str, str] = field(default_factory=dict)
    # Each viewer's notifications once they lost access, before the owner went on.
    notifications_before: dict[str, Any] = field(default_factory=dict)
    # Refusals for ids that name nothing, by viewer, document and type: asked once.
    ghost_answers: dict[tuple[str, str, str], Answer] = field(default_factory=dict)

    def token(self, viewer: str) -> str | None:
        account = self.accounts.get(viewer)
        return account.token if account is not None else None

    def plant(self, secret: str, hidden_from: Iterable[str] = EVERYONE_UNAUTHORIZED) -> str:
        self.secrets[secret] = frozenset(hidden_from)
        return secret


@dataclass
class Answer:
    status: int
    text: str
    body: dict[str, Any]

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self.body.get("errors") or []
        return errors

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code", "") for error in self.errors]


# Leaks found by the audit that are being fixed elsewhere, by kind, with where. A kind
# listed here is reported but does not fail; take it out once the fix is in, so that it
# can never come back.
KNOWN_LEAKS: dict[str, str] = {}


@dataclass(frozen=True)
class Leak:
    kind: str
    viewer: str
    path: str
    what: str

    def __str__(self) -> str:
        return f"[{self.viewer}] {self.path}: {self.what} ({self.kind})"


def _sent_strings(value: Any) -> Iterator[str]:
    """Every string a request's variables carry: what the client already knows."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _sent_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _sent_strings(item)


class Audit:
    """Collects every leak a test finds, so that one failure lists them all."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.leaks: list[Leak] = []

    def leak(self, viewer: str, path: str, what: str, *, kind: str = "data") -> None:
        self.leaks.append(Leak(kind=kind, viewer=viewer, path=path, what=what))

    def check(self, viewer: str, path: str, text: str, *, sent: Iterable[str] = ()) -> None:
        """Nothing planted for the owner's eyes is in ``text``, beyond what the request
        itself sent (an error may name the id it was asked for)."""
        for known in sent:
            text = text.replace(known, "")
        for secret, hidden_from in self.world.secrets.items():
            if viewer in hidden_from and secret in text:
                self.leak(viewer, path, f"the answer contains {secret!r}", kind="secret")

    async def post(self, viewer: str, query: str, variables: dict[str, Any] | None) -> Answer:
        token = self.world.token(viewer)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.world.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        return Answer(status=response.status_code, text=response.text, body=response.json())

    async def ask(
        self, viewer: str, path: str, query: str, variables: dict[str, Any] | None = None
    ) -> Answer:
        answer = await self.post(viewer, query, variables)
        mistakes = {"QUERY_TOO_COMPLEX", "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED"}
        assert not mistakes & set(answer.codes), f"the probe {path} is wrong: {answer.text}"
        self.check(viewer, path, answer.text, sent=list(_sent_strings(variables)))
        if answer.status >= 500 or "INTERNAL_SERVER_ERROR" in answer.codes:
            self.leak(viewer, path, f"our own failure: {answer.text[:300]}", kind="failure")
        untyped = [error for error in answer.errors if "code" not in error.get("extensions", {})]
        if untyped:
            self.leak(viewer, path, f"untyped errors {untyped}", kind="untyped")
        for where, page_info in empty_pages(answer.data):
            self.leak(
                viewer,
                f"{path} {where}",
                f"a page of hidden items says they exist: {page_info}",
                kind="empty page",
            )
        if viewer == "logged_out":
            # A revoked token is no viewer: it reads exactly what anonymous reads.
            anonymous = await self.post("anonymous", query, variables)
            # (Only the words differ: "log in again" rather than "log in".)
            if (answer.data, answer.codes) != (anonymous.data, anonymous.codes):
                self.leak(
                    viewer,
                    path,
                    f"a revoked token reads more than anonymous: {answer.text[:300]}",
                    kind="revoked",
                )
        return answer

    async def ghost(
        self, viewer: str, path: str, query: str, variables: dict[str, Any], *, key: str
    ) -> Answer:
        """What ``query`` answers ``viewer`` when the id in ``variables[key]`` is replaced
        by one of the same type that names nothing."""
        type_name = from_global_id(variables[key])[0]
        cached = self.world.ghost_answers.get((viewer, query, type_name))
        if cached is None:
            ghostly = {**variables, key: ghost_of(variables[key])}
            cached = await self.ask(viewer, f"{path} (an id naming nothing)", query, ghostly)
            self.world.ghost_answers[(viewer, query, type_name)] = cached
        return cached

    def refused(
        self,
        viewer: str,
        path: str,
        answer: Answer,
        *,
        like: Answer | None = None,
        codes: set[str] = ALLOWED_REFUSALS,
    ) -> None:
        """A typed refusal, with no data, that says what one for an id naming nothing
        (``like``) says."""
        if not answer.errors or not set(answer.codes) <= codes:
            self.leak(
                viewer,
                path,
                f"not refused with one of {sorted(codes)}: {answer.text[:400]}",
                kind="not refused",
            )
            return
        if any(value is not None for value in (answer.data or {}).values()):
            self.leak(viewer, path, f"a refusal that still answers: {answer.data}")
        if like is not None and (answer.codes, _messages(answer)) != (
            like.codes,
            _messages(like),
        ):
            self.leak(
                viewer,
                path,
                "refused differently from an id that names nothing: "
                f"{answer.codes} {_messages(answer)} vs {like.codes} {_messages(like)}",
                kind="tells apart",
            )

    def assert_none(self) -> None:
        unknown = [leak for leak in self.leaks if leak.kind not in KNOWN_LEAKS]
        known = [leak for leak in self.leaks if leak.kind in KNOWN_LEAKS]
        assert not unknown, f"{len(unknown)} leaks:\n" + "\n".join(map(str, unknown))
        for leak in known:
            warnings.warn(f"known leak, {KNOWN_LEAKS[leak.kind]}: {leak}", stacklevel=2)


QUOTED_ID = re.compile(r"'[A-Za-z0-9+/=_-]{8,}'")


def _messages(answer: Answer) -> list[str]:
    """Error messages, with any id the client sent (quoted) taken out."""
    return [QUOTED_ID.sub("<id>", error.get("message", "")) for error in answer.errors]


def empty_pages(data: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Pages with no items whose page info still says something (a cursor, a next page):
    metadata about items the viewer may not see."""
    if isinstance(data, dict):
        page_info = data.get("pageInfo")
        items = data.get("edges", data.get("nodes"))
        if (
            isinstance(page_info, dict)
            and items == []
            and any(value not in (None, False) for value in page_info.values())
        ):
            yield where or "(root)", page_info
        for key, value in data.items():
            yield from empty_pages(value, f"{where}.{key}")
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from empty_pages(value, f"{where}[{index}]")


def ghost_of(global_id: str) -> str:
    """An id of the same type, on the same shard, that names nothing."""
    type_name, object_id = from_global_id(global_id)
    return to_global_id(
        type_name, compose_id(milliseconds_since_epoch=1, shard=shard_of(object_id), sequence=1)
    )


def viewers_of(world: World, key: str) -> tuple[str, ...]:
    """The unauthorized viewers of the object ``key``, and those only it hides from."""
    extra = ("non_close",) if key in ("close_story", "close_story_media") else ()
    return UNAUTHORIZED + extra


# Documents --------------------------------------------------------------------------

PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
POST_LEAN = f"""
fragment PL on Post {{
  id caption author {{ id username }} likeCount commentCount viewerHasSaved
  media {{ id url(width: 320) }}
  comments(first: 3) {{ {PAGE_INFO} nodes {{ id body author {{ id }} }} }}
}}
"""
STORY_FIELDS = """
fragment S on Story {
  id audience createdAt expiresAt viewerHasSeen viewCount author { id username }
  media { id url(width: 320) variants { url } }
}
"""
NOTIFICATIONS_DOCUMENT = f"""
{{
  notifications(last: 50) {{
    {PAGE_INFO}
    edges {{ cursor node {{
      id kind actorCount actors {{ id username }} text threadId read createdAt updatedAt cursor
      post {{ id caption }} comment {{ id body }}
    }} }}
  }}
  notificationsUnreadCount
}}
"""


# Calls -----------------------------------------------------------------------------------


async def call(
    gql: GraphQLClient, account: Account, query: str, variables: dict[str, Any] | None = None
) -> Any:
    return (await gql(query, variables, token=account.token)).ok()


async def send_message(gql: GraphQLClient, sender: Account, thread_id: str, text: str) -> int:
    sent = await call(
        gql,
        sender,
        "mutation($t: ID, $x: String) { sendMessage(input: {threadId: $t, text: $x}) "
        "{ message { seq } } }",
        {"t": thread_id, "x": text},
    )
    seq: int = sent["sendMessage"]["message"]["seq"]
    return seq
