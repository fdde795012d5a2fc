"""The authorization audit, generated from the schema.

Every object type and field of the schema is classified in ``AUDIT`` (a field the audit
does not know fails ``test_every_field_is_classified``), with the probe that exercises it.
The probes run against one world, built once for the module through the real API: a
private owner with posts, media, comments, likes, saves, stories (one for everyone, one for
close friends) and their viewers, threads with messages and reactions, notifications and a
follow request; and every kind of viewer who must not see it: anonymous, a stranger, a
user the owner blocked, a user who blocked the owner, a removed follower, a pending
requester, a follower left off the close-friends list, a member removed from a group, and
a logged-out session. Every answer is searched, as raw text, for the strings and ids
planted in the world; counts, cursors and ``hasNextPage`` must not reveal what is hidden,
and refusals are typed and say no more than they would for an id that names nothing.
Leaks are collected, not stopped at: a failure lists every one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import re
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from graphql import GraphQLInterfaceType, GraphQLObjectType
from websockets.exceptions import ConnectionClosed

from db.explore.store import MODEL_PREFIX
from db.ids import compose_id, shard_of
from db.runtime import Runtime
from db.shards import ShardMap
from domain.media.processing import generate_demo_image
from domain.state import AppState
from graphql_api.app import create_app
from graphql_api.relay import from_global_id, to_global_id
from graphql_api.schema import schema
from infra.servers import Servers
from infra.settings import Settings
from tests.conftest import empty_every_table
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up
from tests.media_helpers import publish, upload_media
from tests.ws_client import MESSAGE_EVENTS, NOTIFICATION_EVENTS, Socket, open_socket

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

# Probes: the test functions of this module that exercise a field.
LOOKUPS = "test_lookups_by_id_reveal_nothing"
PROFILE = "test_the_owners_profile_and_lists"
FEEDS = "test_feeds_search_and_discovery"
MUTATIONS = "test_mutations_on_hidden_objects_refuse_and_return_nothing"
THREADS = "test_threads_and_messages"
NOTIFICATIONS = "test_notifications_say_nothing_new"
STORIES = "test_stories_and_their_views"
LIVE = "test_live_events_reach_no_unauthorized_socket"
MEDIA_HTTP = "test_media_urls_over_http"
LOGGED_OUT = "test_a_logged_out_token_reads_nothing"
OWN = "test_own_lists_are_the_viewers"


def _classify(exposure: Exposure, probe: str, type_name: str, fields: str) -> dict[str, Any]:
    return {f"{type_name}.{name}": (exposure, probe) for name in fields.split()}


def _connection(type_name: str, probe: str) -> dict[str, Any]:
    """A connection's plumbing: its nodes are checked one by one; its page info is
    checked by ``empty_pages_say_nothing`` on every answer."""
    return {
        **_classify(GUARDED, probe, type_name, "edges nodes"),
        **_classify(PUBLIC, probe, type_name, "pageInfo"),
        **_classify(GUARDED, probe, type_name.replace("Connection", "Edge"), "node"),
        **_classify(PUBLIC, probe, type_name.replace("Connection", "Edge"), "cursor"),
    }


AUDIT: dict[str, tuple[Exposure, str]] = {
    # Roots -----------------------------------------------------------------------------
    **_classify(GUARDED, LOOKUPS, "Query", "node nodes"),
    **_classify(OWNER, LOOKUPS, "Query", "media"),
    **_classify(OWNER, OWN, "Query", "viewer followRequests closeFriends savedPosts"),
    **_classify(GUARDED, PROFILE, "Query", "user searchUsers"),
    **_classify(
        GUARDED,
        FEEDS,
        "Query",
        "postsByHashtag homeFeed reelsFeed explore similarPosts suggestedAccounts",
    ),
    **_classify(GUARDED, STORIES, "Query", "storiesTray"),
    **_classify(OWNER, THREADS, "Query", "inbox thread messages"),
    **_classify(OWNER, NOTIFICATIONS, "Query", "notifications notificationsUnreadCount"),
    **_classify(OWNER, LIVE, "Subscription", "messageEvents notificationEvents"),
    # Mutations on someone else's objects refuse as if they did not exist; the rest act
    # on the viewer's own account and content.
    **_classify(
        GUARDED,
        MUTATIONS,
        "Mutation",
        "follow unfollow approveFollowRequest denyFollowRequest removeFollower block unblock "
        "editPost deletePost addComment deleteComment likePost unlikePost likeComment "
        "unlikeComment savePost unsavePost markStorySeen deleteStory recordReelView "
        "replyToStory setAvatar finalizeUpload",
    ),
    **_classify(
        GUARDED,
        THREADS,
        "Mutation",
        "startThread sendMessage markThreadRead reactToMessage sendTypingIndicator "
        "addThreadMembers removeThreadMember acceptMessageRequest",
    ),
    **_classify(OWNER, OWN, "Mutation", "signUp logIn updateProfile deleteAccount"),
    **_classify(OWNER, OWN, "Mutation", "createPost createUpload createStory setCloseFriends"),
    **_classify(OWNER, LOGGED_OUT, "Mutation", "logOut"),
    **_classify(OWNER, NOTIFICATIONS, "Mutation", "markNotificationsRead"),
    # Payloads: their objects are the visible ones the mutation acted on.
    **_classify(OWNER, OWN, "AuthPayload", "token user"),
    **_classify(PUBLIC, MUTATIONS, "BlockPayload", "blockedUserId"),
    **_classify(OWNER, OWN, "CloseFriendsPayload", "closeFriends"),
    **_classify(GUARDED, MUTATIONS, "CommentPayload", "comment"),
    **_classify(OWNER, OWN, "CreateUploadPayload", "upload"),
    **_classify(OWNER, OWN, "DeleteAccountPayload", "deletedUserId"),
    **_classify(PUBLIC, MUTATIONS, "DeleteCommentPayload", "deletedCommentId"),
    **_classify(PUBLIC, MUTATIONS, "DeletePostPayload", "deletedPostId"),
    **_classify(PUBLIC, MUTATIONS, "DeleteStoryPayload", "deletedStoryId"),
    **_classify(GUARDED, MUTATIONS, "FollowPayload", "user status"),
    **_classify(OWNER, LOGGED_OUT, "LogOutPayload", "ok"),
    **_classify(OWNER, MUTATIONS, "MediaPayload", "media"),
    **_classify(GUARDED, THREADS, "MessagePayload", "message"),
    **_classify(GUARDED, MUTATIONS, "PostPayload", "post"),
    **_classify(GUARDED, MUTATIONS, "RecordReelViewPayload", "post viewCount"),
    **_classify(GUARDED, MUTATIONS, "StoryPayload", "story"),
    **_classify(GUARDED, THREADS, "ThreadPayload", "thread"),
    **_classify(GUARDED, MUTATIONS, "UserPayload", "user"),
    **_classify(OWNER, OWN, "Upload", "media url method fields expiresAt maxBytes"),
    **_classify(OWNER, OWN, "UploadField", "name value"),
    # Users: the profile and its counts are public (SECURITY.md, architecture §9); the
    # lists are FORBIDDEN on a private account not followed; a block hides the user.
    **_classify(GUARDED, LOOKUPS, "Node", "id"),
    **_classify(
        PUBLIC,
        PROFILE,
        "User",
        "id username fullName bio website isPrivate createdAt followerCount followingCount "
        "postCount viewerFollows followStatus avatar",
    ),
    **_classify(GUARDED, PROFILE, "User", "followers following posts"),
    **_classify(GUARDED, STORIES, "User", "stories"),
    **_connection("UserConnection", PROFILE),
    # Posts and comments: visible with their author's content.
    **_classify(
        PUBLIC,
        LOOKUPS,
        "Post",
        "id caption createdAt updatedAt hashtags likeCount commentCount isReel viewCount",
    ),
    **_classify(GUARDED, LOOKUPS, "Post", "author mentions media comments"),
    **_classify(OWNER, LOOKUPS, "Post", "viewerHasLiked viewerHasSaved"),
    **_connection("PostConnection", FEEDS),
    **_classify(PUBLIC, LOOKUPS, "Comment", "id body createdAt likeCount"),
    **_classify(GUARDED, LOOKUPS, "Comment", "author post replies"),
    **_classify(OWNER, LOOKUPS, "Comment", "viewerHasLiked"),
    **_connection("CommentConnection", LOOKUPS),
    **_classify(PUBLIC, FEEDS, "PageInfo", "hasNextPage hasPreviousPage startCursor endCursor"),
    # Media: reached only through what publishes it; URLs of a private account's media
    # are signed and expire.
    **_classify(
        PUBLIC,
        MEDIA_HTTP,
        "Media",
        "id kind status width height aspectRatio placeholder durationSeconds url variants "
        "videoUrl createdAt",
    ),
    **_classify(OWNER, LOOKUPS, "Media", "error"),
    **_classify(OWNER, LOOKUPS, "MediaError", "code message"),
    **_classify(PUBLIC, MEDIA_HTTP, "MediaVariant", "width height format byteSize url"),
    # Stories: visible like posts, close-friends ones to the list only; views are the
    # author's.
    **_classify(PUBLIC, STORIES, "Story", "id audience createdAt expiresAt"),
    **_classify(GUARDED, STORIES, "Story", "author media"),
    **_classify(OWNER, STORIES, "Story", "viewerHasSeen viewCount viewers"),
    **_classify(GUARDED, STORIES, "StoryTrayItem", "user stories"),
    **_classify(OWNER, STORIES, "StoryTrayItem", "hasUnseen unseenCount storyCount"),
    **_connection("StoryTrayItemConnection", STORIES),
    # Threads and messages: members only; a block hides the other side's messages.
    **_classify(OWNER, THREADS, "Thread", "id isGroup title lastSeq lastMessageAt unreadCount"),
    **_classify(GUARDED, THREADS, "Thread", "members lastMessage readMarks"),
    **_connection("ThreadConnection", THREADS),
    **_classify(PUBLIC, THREADS, "Message", "id seq threadId kind text createdAt"),
    **_classify(GUARDED, THREADS, "Message", "sender post story media reactions"),
    **_connection("MessageConnection", THREADS),
    **_classify(PUBLIC, THREADS, "Reaction", "emoji"),
    **_classify(GUARDED, THREADS, "Reaction", "user"),
    **_classify(PUBLIC, THREADS, "ReadMark", "seq"),
    **_classify(GUARDED, THREADS, "ReadMark", "user"),
    **_classify(OWNER, LIVE, "MessageEvent", "kind threadId seq emoji"),
    **_classify(GUARDED, LIVE, "MessageEvent", "message user"),
    # Notifications: the recipient's alone, naming only actors visible to them.
    **_classify(
        OWNER,
        NOTIFICATIONS,
        "Notification",
        "id kind actorCount text threadId read createdAt updatedAt cursor",
    ),
    **_classify(GUARDED, NOTIFICATIONS, "Notification", "actors post comment"),
    **_connection("NotificationConnection", NOTIFICATIONS),
    **_classify(OWNER, LIVE, "NotificationEvent", "kind notification unreadCount"),
}

ROOT_TYPES = {"Query", "Mutation", "Subscription"}


def schema_fields() -> set[str]:
    """Every field of every object type and interface of the schema, as ``Type.field``."""
    found: set[str] = set()
    for name, graphql_type in schema._schema.type_map.items():
        if name.startswith("__"):
            continue
        if isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType):
            found.update(f"{name}.{field_name}" for field_name in graphql_type.fields)
    return found


def test_every_field_is_classified() -> None:
    fields = schema_fields()
    missing = sorted(fields - set(AUDIT))
    assert not missing, (
        "These fields are not in the authorization audit. Classify each in AUDIT "
        "(tests/test_authorization_audit.py) as PUBLIC, PRIVATE_TO_OWNER or "
        "GUARDED_BY_PARENT, with the probe that shows it leaks nothing (and extend that "
        f"probe if it does not reach the field yet): {missing}"
    )
    stale = sorted(set(AUDIT) - fields)
    assert not stale, f"AUDIT classifies fields the schema no longer has: {stale}"
    probes = {probe for _, probe in AUDIT.values()}
    unknown = sorted(probe for probe in probes if not callable(globals().get(probe)))
    assert not unknown, f"AUDIT names probes that are not tests of this module: {unknown}"


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


def key_directory(url: str) -> str:
    """The media key's directory (``m/<owner>/<name>/``) in a media URL: what names the
    object in storage."""
    path = urlsplit(url).path
    match = re.search(r"/m/\d+/[^/]+/", path)
    assert match, url
    return match.group(0)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


# Documents --------------------------------------------------------------------------

PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
MEDIA_FIELDS = """
fragment M on Media {
  id kind status width height aspectRatio placeholder durationSeconds createdAt
  url(width: 320) videoUrl error { code message } variants { width height format byteSize url }
}
"""
POST_FULL = (
    MEDIA_FIELDS
    + f"""
fragment P on Post {{
  id caption createdAt updatedAt hashtags author {{ id username }} mentions {{ id username }}
  likeCount commentCount viewerHasLiked viewerHasSaved isReel viewCount media {{ ...M }}
  comments(first: 5) {{
    {PAGE_INFO}
    edges {{ cursor node {{
      id body createdAt likeCount viewerHasLiked author {{ id username }} post {{ id }}
      replies(first: 3) {{ {PAGE_INFO} nodes {{ id body }} }}
    }} }}
  }}
}}
"""
)
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
NODE = (
    POST_FULL
    + STORY_FIELDS.replace("fragment S on Story", "fragment NS on Story").replace(
        "  media {", "  storyMedia: media {"
    )
    + """
query($id: ID!) { node(id: $id) {
  __typename id
  ... on Post { ...P }
  ... on Comment { body author { id } post { id } likeCount }
  ... on Story { ...NS }
  ... on Media { ...M }
  ... on User { username }
} }
"""
)
NODES = """
query($ids: [ID!]!) { nodes(ids: $ids) {
  __typename id
  ... on Post { caption media { url } }
  ... on Comment { body }
  ... on Story { storyMedia: media { url } }
  ... on Media { url }
} }
"""
MESSAGE_FIELDS = """
fragment Msg on Message {
  id seq threadId kind text createdAt sender { id username } post { id caption }
  story { id } media { id url } reactions { emoji user { id username } }
}
"""
THREAD_FIELDS = (
    MESSAGE_FIELDS
    + """
fragment T on Thread {
  id isGroup title lastSeq lastMessageAt unreadCount members { id username }
  lastMessage { ...Msg } readMarks { seq user { id username } }
}
"""
)
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
CREATE_STORY = """
mutation($m: ID!, $a: StoryAudience!) {
  createStory(input: {mediaId: $m, audience: $a}) { story { id } }
}
"""


# Building it -----------------------------------------------------------------------------


async def _call(
    gql: GraphQLClient, account: Account, query: str, variables: dict[str, Any] | None = None
) -> Any:
    return (await gql(query, variables, token=account.token)).ok()


async def _send(gql: GraphQLClient, sender: Account, thread_id: str, text: str) -> int:
    sent = await _call(
        gql,
        sender,
        "mutation($t: ID, $x: String) { sendMessage(input: {threadId: $t, text: $x}) "
        "{ message { seq } } }",
        {"t": thread_id, "x": text},
    )
    seq: int = sent["sendMessage"]["message"]["seq"]
    return seq


async def _approve(gql: GraphQLClient, owner: Account, follower: Account) -> None:
    assert await follow(gql, follower, owner) == "REQUESTED"
    await _call(
        gql,
        owner,
        "mutation($id: ID!) { approveFollowRequest(userId: $id) { user { id } } }",
        {"id": follower.id},
    )


async def _story(
    gql: GraphQLClient, state: AppState, owner: Account, *, seed: int, audience: str
) -> str:
    media = await upload_media(
        gql, state, owner, generate_demo_image(seed=seed, width=320, height=480)
    )
    created = await _call(gql, owner, CREATE_STORY, {"m": media["id"], "a": audience})
    story_id: str = created["createStory"]["story"]["id"]
    return story_id


async def build_world(http: httpx.AsyncClient, state: AppState) -> World:
    gql = GraphQLClient(http)
    accounts = {
        role: await sign_up(gql, username, private=role == "owner")
        for role, username in USERNAMES.items()
    }
    world = World(http=http, gql=gql, state=state, accounts=accounts, ids={})
    owner, insider, pal = accounts["owner"], accounts["insider"], accounts["pal"]
    ids = world.ids

    # While everyone who will lose access still has it.
    for role in ("insider", "non_close", "blocked", "blocker", "removed", "logged_out"):
        await _approve(gql, owner, accounts[role])
    assert await follow(gql, accounts["pending"], owner) == "REQUESTED"
    await follow(gql, owner, pal)
    await _call(
        gql,
        owner,
        "mutation($id: ID!) { setCloseFriends(add: [$id]) { closeFriends { id } } }",
        {"id": insider.id},
    )

    photo = await upload_media(
        gql, state, owner, generate_demo_image(seed=71, width=400, height=300)
    )
    caption = world.plant("vault-secret-caption-one #vaulttag")
    post = (await publish(gql, owner, [photo["id"]], caption)).ok()["createPost"]["post"]
    ids["post"], ids["media"] = post["id"], photo["id"]
    world.media_paths["post"] = path_of(post["media"][0]["url"])
    ids["comment_owner"] = (
        await _call(
            gql,
            owner,
            "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) "
            "{ comment { id } } }",
            {"p": ids["post"], "b": world.plant("vault-secret-owner-comment")},
        )
    )["addComment"]["comment"]["id"]
    ids["comment_insider"] = (
        await _call(
            gql,
            insider,
            "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) "
            "{ comment { id } } }",
            {"p": ids["post"], "b": world.plant("vault-secret-insider-comment")},
        )
    )["addComment"]["comment"]["id"]
    # Followers who will lose access liked and saved it while they could.
    for role in ("insider", "blocked", "blocker", "removed", "logged_out"):
        for verb in ("likePost", "savePost"):
            await _call(
                gql,
                accounts[role],
                f"mutation($p: ID!) {{ {verb}(postId: $p) {{ post {{ id }} }} }}",
                {"p": ids["post"]},
            )

    # The owner's comment on a public post: hidden only across a block.
    ids["pal_post"] = await create_post(gql, pal, "a public post #opentag")
    ids["comment_on_pal"] = (
        await _call(
            gql,
            owner,
            "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) "
            "{ comment { id } } }",
            {"p": ids["pal_post"], "b": world.plant("vault-comment-on-pal", BLOCKED_EITHER_WAY)},
        )
    )["addComment"]["comment"]["id"]

    ids["story"] = await _story(gql, state, owner, seed=72, audience="EVERYONE")
    ids["close_story"] = await _story(gql, state, owner, seed=73, audience="CLOSE_FRIENDS")
    for viewer, story in (("insider", "story"), ("insider", "close_story"), ("non_close", "story")):
        await _call(
            gql,
            accounts[viewer],
            "mutation($s: ID!) { markStorySeen(storyId: $s) { story { id } } }",
            {"s": ids[story]},
        )
    stories = await _call(
        gql,
        owner,
        STORY_FIELDS
        + "query($a: ID!, $b: ID!) { a: node(id: $a) { ...S } b: node(id: $b) { ...S } }",
        {"a": ids["story"], "b": ids["close_story"]},
    )
    world.media_paths["story"] = path_of(stories["a"]["media"]["url"])
    world.media_paths["close_story"] = path_of(stories["b"]["media"]["url"])
    ids["story_media"] = stories["a"]["media"]["id"]
    ids["close_story_media"] = stories["b"]["media"]["id"]

    group = await _call(
        gql,
        owner,
        'mutation($ids: [ID!]!) { startThread(input: {userIds: $ids, title: "crew"}) '
        "{ thread { id } } }",
        {"ids": [accounts[r].id for r in ("insider", "blocked", "blocker", "former")]},
    )
    ids["group"] = group["startThread"]["thread"]["id"]
    world.plant("vault-secret-group-early")
    await _send(gql, owner, ids["group"], "vault-secret-group-early")
    ids["insider_seq"] = str(await _send(gql, insider, ids["group"], "hello from the insider"))
    await _call(
        gql,
        insider,
        'mutation($t: ID!) { reactToMessage(threadId: $t, seq: 1, emoji: "🔥") '
        "{ message { seq } } }",
        {"t": ids["group"]},
    )
    direct_thread = await _call(
        gql,
        owner,
        "mutation($u: ID!) { startThread(input: {userIds: [$u]}) { thread { id } } }",
        {"u": insider.id},
    )
    ids["direct"] = world.plant(direct_thread["startThread"]["thread"]["id"])
    await _send(gql, owner, ids["direct"], world.plant("vault-secret-direct"))
    await _call(gql, accounts["logged_out"], "mutation { logOut { ok } }")

    # Access lost.
    await _call(
        gql,
        owner,
        "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
        {"id": accounts["blocked"].id},
    )
    await _call(
        gql,
        accounts["blocker"],
        "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
        {"id": owner.id},
    )
    await _call(
        gql,
        owner,
        "mutation($id: ID!) { removeFollower(userId: $id) { user { id } } }",
        {"id": accounts["removed"].id},
    )
    await _call(
        gql,
        owner,
        "mutation($t: ID!, $u: ID!) { removeThreadMember(threadId: $t, userId: $u) }",
        {"t": ids["group"], "u": accounts["former"].id},
    )
    # Someone the blocked members still share the group with writes again: theirs to read.
    await _send(gql, insider, ids["group"], "insider again")
    for viewer in SIGNED_IN:
        world.notifications_before[viewer] = (
            await gql(NOTIFICATIONS_DOCUMENT, token=world.token(viewer))
        ).ok()

    # The owner goes on, naming everyone who lost access.
    mentions = " ".join(f"@{USERNAMES[role]}" for role in SIGNED_IN)
    ids["late_post"] = await create_post(
        gql, owner, world.plant(f"vault-secret-late #vaulttag {mentions}")
    )
    await _send(gql, owner, ids["group"], world.plant("vault-secret-group-late"))
    # The owner's user id is theirs to know, except across a block.
    world.plant(owner.id, BLOCKED_EITHER_WAY)
    for key in ("post", "media", "comment_owner", "comment_insider", "late_post"):
        world.plant(ids[key])
    for key in ("story", "close_story", "story_media", "close_story_media"):
        world.plant(ids[key])
    world.plant(ids["comment_on_pal"], BLOCKED_EITHER_WAY)
    for name in ("post", "story", "close_story"):
        world.plant(key_directory(world.media_paths[name]))
    # Who the owner's followers and story viewers are is not the outsiders' to know.
    world.plant(insider.id, {"anonymous", "stranger", "pending", "removed", "logged_out"})
    return world


@pytest.fixture(scope="module")
async def world(settings: Settings, servers: Servers, shard_map: ShardMap) -> AsyncIterator[World]:
    """Built once for the module, on a runtime of its own: the function-scoped ``runtime``
    fixture would truncate the tables between tests."""
    empty_every_table(shard_map)
    runtime = Runtime.connect(settings, servers)
    await runtime.redis.flushdb()
    await runtime.object_store.delete(await runtime.object_store.list_keys(prefix=MODEL_PREFIX))
    app = create_app(runtime, close_runtime=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://aperture.test"
    ) as http:
        state: AppState = app.state.aperture
        yield await build_world(http, state)
    await runtime.close()


def viewers_of(world: World, key: str) -> tuple[str, ...]:
    """The unauthorized viewers of the object ``key``, and those only it hides from."""
    extra = ("non_close",) if key in ("close_story", "close_story_media") else ()
    return UNAUTHORIZED + extra


# Probes ------------------------------------------------------------------------------

HIDDEN_NODES = (
    "post",
    "late_post",
    "comment_owner",
    "comment_insider",
    "story",
    "close_story",
    "media",
    "story_media",
    "close_story_media",
)


async def test_lookups_by_id_reveal_nothing(world: World) -> None:
    audit = Audit(world)
    for key in HIDDEN_NODES:
        hidden = world.ids[key]
        for viewer in viewers_of(world, key):
            if viewer == "non_close" and key == "close_story_media":
                continue  # media by id is its owner's only: covered by the others
            like = await audit.ghost(viewer, f"node({key}) ", NODE, {"id": hidden}, key="id")
            answer = await audit.ask(viewer, f"node({key})", NODE, {"id": hidden})
            audit.refused(viewer, f"node({key})", answer, like=like)
    for viewer in UNAUTHORIZED:
        hidden_ids = [world.ids[key] for key in HIDDEN_NODES]
        answer = await audit.ask(viewer, "nodes(...)", NODES, {"ids": hidden_ids})
        if viewer != "logged_out" and (
            answer.errors or answer.data["nodes"] != [None] * len(hidden_ids)
        ):
            audit.leak(viewer, "nodes(...)", f"not all null: {answer.text[:300]}")
        for key in ("media", "story_media", "close_story_media"):
            query = "query($id: ID!) { media(id: $id) { id url variants { url } } }"
            like = await audit.ghost(
                viewer, f"media({key}) ", query, {"id": world.ids[key]}, key="id"
            )
            answer = await audit.ask(viewer, f"media({key})", query, {"id": world.ids[key]})
            audit.refused(viewer, f"media({key})", answer, like=like)
    for viewer in BLOCKED_EITHER_WAY:
        owner_id = world.accounts["owner"].id
        like = await audit.ghost(viewer, "node(owner) ", NODE, {"id": owner_id}, key="id")
        answer = await audit.ask(viewer, "node(owner)", NODE, {"id": owner_id})
        audit.refused(viewer, "node(owner)", answer, like=like)
        comment = world.ids["comment_on_pal"]
        like = await audit.ghost(viewer, "node(comment on pal) ", NODE, {"id": comment}, key="id")
        answer = await audit.ask(viewer, "node(comment on pal)", NODE, {"id": comment})
        audit.refused(viewer, "node(comment on pal)", answer, like=like)
    audit.assert_none()


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


FEEDS_DOCUMENT = (
    POST_LEAN
    + f"""
{{
  homeFeed(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
  reelsFeed(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
  explore(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
  suggestedAccounts(first: 10) {{ id username }}
  savedPosts(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
}}
"""
)
HASHTAG_DOCUMENT = (
    POST_LEAN
    + f"""
query($tag: String!) {{
  postsByHashtag(tag: $tag, first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
}}
"""
)
SIMILAR_DOCUMENT = (
    POST_LEAN
    + f"""
query($id: ID!) {{
  similarPosts(postId: $id, first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
}}
"""
)
PAL_POST = f"""
query($id: ID!) {{ node(id: $id) {{ ... on Post {{
  commentCount comments(first: 10) {{ {PAGE_INFO} nodes {{ id body }} }}
}} }} }}
"""


async def test_feeds_search_and_discovery(world: World) -> None:
    audit = Audit(world)
    for viewer in UNAUTHORIZED:
        signed_in = viewer in SIGNED_IN
        answer = await audit.ask(viewer, "feeds", FEEDS_DOCUMENT)
        if signed_in and answer.errors:
            audit.leak(viewer, "feeds", f"unexpected errors {answer.errors}")
        if signed_in and world.accounts["owner"].username in json.dumps(
            answer.data["suggestedAccounts"]
        ):
            audit.leak(viewer, "suggestedAccounts", "a private account is suggested")
        for tag in ("vaulttag", "VaultTag"):
            await audit.ask(viewer, f"postsByHashtag({tag})", HASHTAG_DOCUMENT, {"tag": tag})
        if signed_in:
            like = await audit.ghost(
                viewer, "similarPosts ", SIMILAR_DOCUMENT, {"id": world.ids["post"]}, key="id"
            )
            answer = await audit.ask(
                viewer, "similarPosts(hidden)", SIMILAR_DOCUMENT, {"id": world.ids["post"]}
            )
            audit.refused(viewer, "similarPosts(hidden)", answer, like=like)
            await audit.ask(
                viewer, "similarPosts(public)", SIMILAR_DOCUMENT, {"id": world.ids["pal_post"]}
            )
        pal = await audit.ask(viewer, "node(pal post)", PAL_POST, {"id": world.ids["pal_post"]})
        if viewer in BLOCKED_EITHER_WAY:
            post = pal.data["node"]
            shown = len(post["comments"]["nodes"])
            if post["commentCount"] != shown:
                audit.leak(
                    viewer,
                    "pal post commentCount",
                    f"counts {post['commentCount']} comments, {shown} visible",
                    kind="comment count",
                )
    audit.assert_none()


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


MUTATIONS_ON_POSTS = {
    "likePost": "mutation($id: ID!) { likePost(postId: $id) { post { id caption likeCount } } }",
    "unlikePost": "mutation($id: ID!) { unlikePost(postId: $id) { post { id likeCount } } }",
    "savePost": "mutation($id: ID!) { savePost(postId: $id) { post { id caption } } }",
    "unsavePost": "mutation($id: ID!) { unsavePost(postId: $id) { post { id caption } } }",
    "addComment": 'mutation($id: ID!) { addComment(postId: $id, body: "hi") '
    "{ comment { id post { caption } } } }",
    "editPost": 'mutation($id: ID!) { editPost(id: $id, caption: "mine now") { post { id } } }',
    "deletePost": "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }",
    "recordReelView": "mutation($id: ID!) { recordReelView(postId: $id) "
    "{ viewCount post { id caption } } }",
    "sendMessage(post)": "mutation($id: ID!) { sendMessage(input: "
    '{userId: "%s", postId: $id}) { message { post { caption } } } }',
}
MUTATIONS_ON_COMMENTS = {
    "likeComment": "mutation($id: ID!) { likeComment(commentId: $id) { comment { id body } } }",
    "unlikeComment": "mutation($id: ID!) { unlikeComment(commentId: $id) { comment { id body } } }",
    "deleteComment": "mutation($id: ID!) { deleteComment(id: $id) { deletedCommentId } }",
}
MUTATIONS_ON_STORIES = {
    "markStorySeen": "mutation($id: ID!) { markStorySeen(storyId: $id) "
    "{ story { id media { url } } } }",
    "replyToStory": 'mutation($id: ID!) { replyToStory(storyId: $id, text: "wow") '
    "{ message { story { id } } } }",
    "deleteStory": "mutation($id: ID!) { deleteStory(id: $id) { deletedStoryId } }",
}
MUTATIONS_ON_MEDIA = {
    "setAvatar": "mutation($id: ID!) { setAvatar(mediaId: $id) { avatar { url } } }",
    "finalizeUpload": "mutation($id: ID!) { finalizeUpload(mediaId: $id) { media { id url } } }",
    "createStory": "mutation($id: ID!) { createStory(input: {mediaId: $id}) "
    "{ story { media { url } } } }",
}
MUTATIONS_ON_THE_OWNER = {
    "follow": "mutation($id: ID!) { follow(userId: $id) { status user { id username } } }",
    "unfollow": "mutation($id: ID!) { unfollow(userId: $id) { status user { id } } }",
    "approveFollowRequest": "mutation($id: ID!) { approveFollowRequest(userId: $id) "
    "{ user { id } } }",
    "denyFollowRequest": "mutation($id: ID!) { denyFollowRequest(userId: $id) { user { id } } }",
    "removeFollower": "mutation($id: ID!) { removeFollower(userId: $id) { user { id } } }",
    "unblock": "mutation($id: ID!) { unblock(userId: $id) { user { id } } }",
}


async def test_mutations_on_hidden_objects_refuse_and_return_nothing(world: World) -> None:
    audit = Audit(world)
    pal_id = world.accounts["pal"].id
    # Someone else's media is never "yours to publish": the same MEDIA_NOT_READY as media
    # that does not exist (SECURITY.md).
    media_codes = ALLOWED_REFUSALS | {"MEDIA_NOT_READY"}
    targets: list[tuple[dict[str, str], tuple[str, ...], set[str]]] = [
        (MUTATIONS_ON_POSTS, ("post", "late_post"), ALLOWED_REFUSALS),
        (MUTATIONS_ON_COMMENTS, ("comment_owner", "comment_insider"), ALLOWED_REFUSALS),
        (MUTATIONS_ON_STORIES, ("story", "close_story"), ALLOWED_REFUSALS),
        (MUTATIONS_ON_MEDIA, ("media", "story_media"), media_codes),
    ]
    for mutations, keys, codes in targets:
        for key in keys:
            hidden = world.ids[key]
            for viewer in viewers_of(world, key):
                for name, document in mutations.items():
                    if "%s" in document:
                        document = document % pal_id
                    path = f"{name}({key})"
                    # Each mutation runs against a ghost first, so a refusal that differs
                    # for a real, hidden object shows.
                    like = await audit.ghost(viewer, f"{path} ", document, {"id": hidden}, key="id")
                    answer = await audit.ask(viewer, path, document, {"id": hidden})
                    audit.refused(viewer, path, answer, like=like, codes=codes)
    owner_id = world.accounts["owner"].id
    for viewer in BLOCKED_EITHER_WAY:
        for name, document in MUTATIONS_ON_THE_OWNER.items():
            if name == "unblock" and viewer == "blocker":
                continue  # their own block: theirs to lift (and the world needs it)
            like = await audit.ghost(viewer, f"{name} ", document, {"id": owner_id}, key="id")
            answer = await audit.ask(viewer, f"{name}(owner)", document, {"id": owner_id})
            audit.refused(viewer, f"{name}(owner)", answer, like=like)
    # Nothing a refusal touched was written: the post's likes and saves are as they were.
    owner = world.accounts["owner"]
    post = (
        await world.gql(
            "query($id: ID!) { node(id: $id) { ... on Post { likeCount caption "
            "comments(first: 20) { nodes { body } } } } }",
            {"id": world.ids["post"]},
            token=owner.token,
        )
    ).ok()["node"]
    bodies = [node["body"] for node in post["comments"]["nodes"]]
    if "hi" in bodies or post["caption"].startswith("mine"):
        audit.leak("owner", "refused mutations", f"a refused write was stored: {post}")
    # A message refused for the post it shares left no thread with its addressee.
    pal_inbox = (
        await world.gql("{ inbox(first: 10) { nodes { id } } }", token=world.token("pal"))
    ).ok()["inbox"]["nodes"]
    if pal_inbox:
        audit.leak("pal", "sendMessage(post)", f"refused messages left threads: {pal_inbox}")
    audit.assert_none()


async def test_threads_and_messages(world: World) -> None:
    audit = Audit(world)
    group = world.ids["group"]
    documents = {
        "thread": THREAD_FIELDS + "query($t: ID!) { thread(id: $t) { ...T } }",
        "messages": MESSAGE_FIELDS
        + f"query($t: ID!) {{ messages(threadId: $t, last: 10) {{ {PAGE_INFO} "
        "edges { cursor node { ...Msg } } } }",
        "markThreadRead": THREAD_FIELDS
        + "mutation($t: ID!) { markThreadRead(threadId: $t, seq: 1) { ...T } }",
        "reactToMessage": MESSAGE_FIELDS
        + 'mutation($t: ID!) { reactToMessage(threadId: $t, seq: 1, emoji: "👀") { message { ...Msg } } }',
        "sendMessage": MESSAGE_FIELDS
        + 'mutation($t: ID!) { sendMessage(input: {threadId: $t, text: "let me in"}) '
        "{ message { ...Msg } } }",
        "sendTypingIndicator": "mutation($t: ID!) { sendTypingIndicator(threadId: $t) }",
        "addThreadMembers": THREAD_FIELDS + "mutation($t: ID!) { addThreadMembers(threadId: $t, "
        f'userIds: ["{world.accounts["pal"].id}"]) {{ thread {{ ...T }} }} }}',
        "acceptMessageRequest": THREAD_FIELDS
        + "mutation($t: ID!) { acceptMessageRequest(threadId: $t) { ...T } }",
        "removeThreadMember": "mutation($t: ID!) { removeThreadMember(threadId: $t, "
        f'userId: "{world.accounts["insider"].id}") }}',
    }
    # Outsiders of a thread, the former member included, get nothing of it.
    for viewer in UNAUTHORIZED:
        for thread_key in ("group", "direct"):
            thread_id = world.ids[thread_key]
            if viewer in BLOCKED_EITHER_WAY and thread_key == "group":
                continue  # still members: below
            for name, document in documents.items():
                path = f"{name}({thread_key})"
                like = await audit.ghost(viewer, f"{path} ", document, {"t": thread_id}, key="t")
                answer = await audit.ask(viewer, path, document, {"t": thread_id})
                audit.refused(viewer, path, answer, like=like)
        if viewer in SIGNED_IN:
            inbox = await audit.ask(
                viewer,
                "inbox",
                THREAD_FIELDS
                + f"{{ primary: inbox(first: 3) {{ {PAGE_INFO} edges {{ cursor node {{ ...T }} }} }} "
                f"requests: inbox(folder: REQUESTS, first: 3) {{ {PAGE_INFO} nodes {{ id }} }} }}",
            )
            if not inbox.data:
                audit.leak(viewer, "inbox", f"no answer: {inbox.text[:400]}")
                continue
            threads = [edge["node"]["id"] for edge in inbox.data["primary"]["edges"]]
            expected = [group] if viewer in BLOCKED_EITHER_WAY else []
            if threads != expected:
                audit.leak(viewer, "inbox", f"threads {threads}, expected {expected}")
    # Members across a block: the thread is theirs, the owner's messages are not.
    for viewer in BLOCKED_EITHER_WAY:
        thread = await audit.ask(viewer, "thread(group)", documents["thread"], {"t": group})
        summary = thread.data["thread"]
        # Unread, from others: the insider's two messages; the owner's two are hidden.
        if summary["unreadCount"] != 2:
            audit.leak(
                viewer,
                "thread(group).unreadCount",
                f"{summary['unreadCount']}, 2 visible",
                kind="unread count",
            )
        inbox = await audit.ask(
            viewer, "inbox(unread)", "{ inbox(first: 10) { nodes { id unreadCount } } }"
        )
        for node in inbox.data["inbox"]["nodes"]:
            if node["unreadCount"] != 2:
                audit.leak(
                    viewer,
                    "inbox.unreadCount",
                    f"{node['unreadCount']}, 2 visible",
                    kind="unread count",
                )
        messages = await audit.ask(viewer, "messages(group)", documents["messages"], {"t": group})
        assert messages.data, messages.text
        senders = {
            edge["node"]["sender"]["username"] if edge["node"]["sender"] else None
            for edge in messages.data["messages"]["edges"]
        }
        if senders != {USERNAMES["insider"]}:
            audit.leak(viewer, "messages(group)", f"senders {senders}")
        reaction = await audit.ask(
            viewer, "reactToMessage(owner's)", documents["reactToMessage"], {"t": group}
        )
        audit.refused(viewer, "reactToMessage(owner's)", reaction, codes={"NOT_FOUND"})
        # Last, since it moves their read mark: the payload is the thread as they see it.
        await audit.ask(
            viewer,
            "markThreadRead(group)",
            THREAD_FIELDS + "mutation($t: ID!) { markThreadRead(threadId: $t, seq: 4) { ...T } }",
            {"t": group},
        )
    # A refused reaction was not stored: the insider sees no reaction of theirs.
    insider = world.accounts["insider"]
    seen = (
        await world.gql(
            "query($t: ID!) { messages(threadId: $t, first: 10) "
            "{ nodes { seq reactions { emoji user { username } } } } }",
            {"t": group},
            token=insider.token,
        )
    ).ok()["messages"]["nodes"]
    strangers = {
        reaction["user"]["username"]
        for message in seen
        for reaction in message["reactions"]
        if reaction["user"] is not None
    } - {USERNAMES["insider"]}
    if strangers:
        audit.leak("insider", "reactions", f"refused reactions were stored: {strangers}")
    audit.assert_none()


async def test_notifications_say_nothing_new(world: World) -> None:
    """After losing access, nothing the owner does reaches a viewer's notifications: not
    the post that mentions them, not the group's new messages."""
    audit = Audit(world)
    for viewer in UNAUTHORIZED:
        answer = await audit.ask(viewer, "notifications", NOTIFICATIONS_DOCUMENT)
        if viewer in SIGNED_IN and answer.data != world.notifications_before[viewer]:
            audit.leak(
                viewer,
                "notifications",
                f"changed after access was lost: {world.notifications_before[viewer]} "
                f"-> {answer.data}",
            )
        await audit.ask(viewer, "markNotificationsRead", "mutation { markNotificationsRead }")
    audit.assert_none()


STORY_VIEWS = f"""
query($id: ID!) {{ node(id: $id) {{ ... on Story {{
  id viewCount viewers(first: 5) {{ {PAGE_INFO} edges {{ cursor node {{ id username }} }} }}
}} }} }}
"""
TRAY = (
    STORY_FIELDS
    + f"""
{{ storiesTray(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{
  user {{ id username }} hasUnseen unseenCount storyCount stories {{ ...S }}
}} }} }} }}
"""
)


async def test_stories_and_their_views(world: World) -> None:
    audit = Audit(world)
    owner = USERNAMES["owner"]
    # A follower left off the close-friends list sees the story for everyone, and
    # nothing of the other: not in the tray's counts, not in the profile.
    tray = await audit.ask("non_close", "storiesTray", TRAY)
    assert tray.data, tray.text
    items = [edge["node"] for edge in tray.data["storiesTray"]["edges"]]
    owners = [item for item in items if item["user"]["username"] == owner]
    if len(owners) != 1:
        audit.leak("non_close", "storiesTray", f"the owner's item: {items}")
    else:
        item = owners[0]
        if (item["storyCount"], item["unseenCount"], item["hasUnseen"]) != (1, 0, False):
            audit.leak("non_close", "storiesTray counts", f"{item}")
        if [story["id"] for story in item["stories"]] != [world.ids["story"]]:
            audit.leak("non_close", "storiesTray stories", f"{item['stories']}")
    profile = await audit.ask(
        "non_close",
        "user(owner).stories",
        STORY_FIELDS + "query($n: String!) { user(username: $n) { stories { ...S } } }",
        {"n": owner},
    )
    shown = [story["id"] for story in profile.data["user"]["stories"]]
    if shown != [world.ids["story"]]:
        audit.leak("non_close", "user(owner).stories", f"{shown}")
    # Views are the author's: a follower who may see the story learns neither who saw it
    # nor how many.
    for viewer in ("non_close", "insider"):
        views = await audit.ask(viewer, "story viewers", STORY_VIEWS, {"id": world.ids["story"]})
        if views.codes != ["FORBIDDEN"] or (views.data or {}).get("node") is not None:
            audit.leak(viewer, "Story.viewers", f"not FORBIDDEN: {views.text[:300]}")
        count = await audit.ask(
            viewer,
            "story viewCount",
            "query($id: ID!) { node(id: $id) { ... on Story { viewCount } } }",
            {"id": world.ids["story"]},
        )
        if count.errors or count.data["node"]["viewCount"] is not None:
            audit.leak(viewer, "Story.viewCount", f"told: {count.text[:300]}")
    for viewer in UNAUTHORIZED:
        await audit.ask(viewer, "storiesTray", TRAY)
    audit.assert_none()


async def test_media_urls_over_http(world: World) -> None:
    """A private account's media answers only a valid, unexpired signature."""
    audit = Audit(world)
    for name, signed in world.media_paths.items():
        if (await world.http.get(signed)).status_code != 200:
            audit.leak("owner", f"media({name})", "the signed URL does not serve")
        unsigned = signed.split("?")[0]
        for path, url in (("unsigned", unsigned), ("foreign signature", _swap_query(world, name))):
            answer = await world.http.get(url)
            if (
                answer.status_code != 403
                or answer.json()["errors"][0]["extensions"]["code"] != "FORBIDDEN"
            ):
                audit.leak("anonymous", f"media({name}) {path}", f"{answer.status_code}")
    real_clock = world.state.clock
    ttl = world.state.runtime.settings.media_url_ttl_seconds
    world.state.clock = lambda: real_clock() + timedelta(seconds=3 * ttl)
    try:
        for name, signed in world.media_paths.items():
            answer = await world.http.get(signed)
            if answer.status_code != 403:
                audit.leak("anonymous", f"media({name}) expired", f"{answer.status_code}")
    finally:
        world.state.clock = real_clock
    audit.assert_none()


def _swap_query(world: World, name: str) -> str:
    """The URL of ``name`` with another object's signature."""
    others = [path for other, path in world.media_paths.items() if other != name]
    return world.media_paths[name].split("?")[0] + "?" + others[0].split("?")[1]


async def test_a_logged_out_token_reads_nothing(world: World, live_server_url: str) -> None:
    """Every probe runs as ``logged_out`` too (``Audit.ask`` insists on UNAUTHENTICATED);
    here, what only a session can do: its socket is refused."""
    async with open_socket(live_server_url) as socket:
        await socket.send(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {world.token('logged_out')}"},
            }
        )
        with pytest.raises(ConnectionClosed) as closed:
            await socket.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_live_events_reach_no_unauthorized_socket(world: World, live_server_url: str) -> None:
    audit = Audit(world)
    owner = world.accounts["owner"]
    listeners = ("insider", *SIGNED_IN)
    async with contextlib.AsyncExitStack() as stack:
        sockets: dict[str, Socket] = {}
        for viewer in listeners:
            socket = await stack.enter_async_context(
                open_socket(live_server_url, token=world.token(viewer))
            )
            await socket.listen(MESSAGE_EVENTS)
            await socket.listen(NOTIFICATION_EVENTS)
            sockets[viewer] = socket
        for viewer in ("former",):
            refused = await sockets[viewer].subscribe(
                MESSAGE_EVENTS, {"threadId": world.ids["group"]}
            )
            # graphql-transport-ws: a resolver's error is a ``next`` with errors, then
            # ``complete``.
            reply = await sockets[viewer].receive()
            done = await sockets[viewer].receive()
            text = json.dumps([reply, done])
            audit.check(viewer, "messageEvents(group)", text)
            payload = reply.get("payload") or {}
            codes = [error["extensions"]["code"] for error in payload.get("errors", [])]
            if (
                reply.get("id") != refused
                or payload.get("data") is not None
                or codes != ["NOT_FOUND"]
                or done != {"id": refused, "type": "complete"}
            ):
                audit.leak(viewer, "messageEvents(group)", f"not refused: {text[:300]}")
        text = world.plant("vault-secret-live-message")
        await _send(world.gql, owner, world.ids["group"], text)
        await _send(world.gql, owner, world.ids["direct"], world.plant("vault-secret-live-direct"))
        mentions = " ".join(f"@{USERNAMES[role]}" for role in SIGNED_IN)
        await create_post(world.gql, owner, world.plant(f"vault-secret-live-post {mentions}"))
        await world.gql(
            "mutation($p: ID!) { likePost(postId: $p) { post { id } } }",
            {"p": world.ids["pal_post"]},
            token=owner.token,
        )
        # The control: a member who may see it hears it (among its other events: the
        # notifications of the same writes may come first).
        heard: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            while not any(text in json.dumps(event) for event in heard):
                heard.append(await sockets["insider"].next_data(timeout=10.0))
        if not any(text in json.dumps(event) for event in heard):
            audit.leak("insider", "messageEvents", f"the member did not hear it: {heard}")

        async def drain(viewer: str) -> list[dict[str, Any]]:
            events = []
            with contextlib.suppress(TimeoutError):
                while True:
                    events.append(await sockets[viewer].receive(timeout=1.0))
            return events

        everyone = await asyncio.gather(*(drain(viewer) for viewer in SIGNED_IN))
        for viewer, events in zip(SIGNED_IN, everyone, strict=True):
            audit.check(viewer, "live events", json.dumps(events))
            if events:
                audit.leak(viewer, "live events", f"heard {events}")
    audit.assert_none()
