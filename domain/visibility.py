"""Who may see what: the one place that decides, for many ids at once.

Every read that hands users, posts or comments to a viewer goes through ``Visibility``:
the API's loaders, the home feed, search, mentions, hashtag pages and the rules behind
every write ("you can only like a post you can see"). Stories, reels, messages and
notifications add their rules here.

The rules:

- a **user** is visible unless deleted or on either side of a block with the viewer;
- a user's **content** (posts, followers, following) is visible if the account is public,
  is the viewer's own, or the viewer follows it;
- a **post** is visible if it is live and its author's content is visible;
- a **comment** is visible if it is live, its author is visible and its post is visible;
  a post's **comment count** leaves out the comments of anyone on either side of a block
  with the viewer (``visible_comment_count``);
- a **feed entry** is a visible post by the viewer or by someone the viewer follows
  (a feed entry outlives an unfollow until fan-out removes it);
- a **story** is visible until it expires (exactly 24 hours, by ``state.clock``) if its
  author's content is visible and, for a close-friends story, the viewer is the author or
  on the author's close-friends list;
- a **thread** and its messages are visible to its current members only; a **message**
  is hidden from anyone on either side of a block with its sender (as a thread's last
  message and in its unread count too, and it takes no reaction from them), and so are
  the live events that actor causes (``domain/realtime.py``);
- a **notification** is its recipient's alone, and names only actors visible to them;
- **media** is visible through what publishes it (a visible post, story, message or
  avatar) or to its owner; a private account's media URLs, and those of media sent in a
  message, are signed and expire (``media_urls_signed``; ``domain/media/delivery.py``);
- a **message request**: a thread is one for a private member who does not follow its
  sender (``message_request_members``);
- a story's **views** (who saw it, how many) are its author's alone.

The policy asks ``Facts`` for what it needs, in batches. How the facts are fetched is the
caller's business: in the API, the operation's loaders, primed by a page's planned read
(``FactsFrom`` over each feature's loaders, ``graphql_api/context.py``); the caches
directly anywhere else (``DirectFacts``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Protocol, TypeVar

from db.accounts.records import UserRecord
from db.messaging.records import MessageRecord, ThreadMemberRecord
from db.posts.records import CommentRecord, PostRecord
from db.session import ShardSessions
from db.stories.records import StoryRecord
from domain.accounts.relations import block_set, following_flags, load_users
from domain.errors import Forbidden, NotFound
from domain.posts.reads import load_comments, load_posts
from domain.state import AppState
from domain.stories.reads import in_close_friends, load_stories


class UserFacts(Protocol):
    """What the policy asks about accounts, for one viewer: rows, follows and blocks."""

    async def users(self, ids: Sequence[int]) -> list[UserRecord | None]: ...

    async def follows(self, ids: Sequence[int]) -> list[bool]:
        """Whether the viewer follows each of ``ids`` (all False for no viewer)."""
        ...

    async def blocked(self) -> set[int]:
        """Everyone the viewer blocked or was blocked by (empty for no viewer)."""
        ...


class PostFacts(Protocol):
    """What the policy asks about posts and comments: their rows."""

    async def posts(self, ids: Sequence[int]) -> list[PostRecord | None]: ...

    async def comments(self, ids: Sequence[int]) -> list[CommentRecord | None]: ...


class StoryFacts(Protocol):
    """What the policy asks about stories, for one viewer: rows and close-friends lists."""

    async def stories(self, ids: Sequence[int]) -> list[StoryRecord | None]: ...

    async def in_close_friends(self, author_ids: Sequence[int]) -> list[bool]:
        """Whether each author lists the viewer as a close friend (False for no viewer)."""
        ...


class Facts(UserFacts, PostFacts, StoryFacts, Protocol):
    """Rows and relations, fetched in batches; ``None`` for a row that does not exist."""

    @property
    def viewer_id(self) -> int | None: ...

    def now(self) -> datetime:
        """The time stories expire against."""
        ...


class FactsFrom:
    """``Facts`` from one source per kind: in the API, the operation's loaders of the
    feature that answers it (``graphql_api/context.py: Loaders.visibility``)."""

    def __init__(
        self,
        *,
        viewer_id: int | None,
        clock: Callable[[], datetime],
        users: UserFacts,
        posts: PostFacts,
        stories: StoryFacts,
    ) -> None:
        self._viewer_id = viewer_id
        self._clock = clock
        self._users = users
        self._posts = posts
        self._stories = stories

    @property
    def viewer_id(self) -> int | None:
        return self._viewer_id

    async def users(self, ids: Sequence[int]) -> list[UserRecord | None]:
        return await self._users.users(ids)

    async def follows(self, ids: Sequence[int]) -> list[bool]:
        return await self._users.follows(ids)

    async def blocked(self) -> set[int]:
        return await self._users.blocked()

    async def posts(self, ids: Sequence[int]) -> list[PostRecord | None]:
        return await self._posts.posts(ids)

    async def comments(self, ids: Sequence[int]) -> list[CommentRecord | None]:
        return await self._posts.comments(ids)

    async def stories(self, ids: Sequence[int]) -> list[StoryRecord | None]:
        return await self._stories.stories(ids)

    async def in_close_friends(self, author_ids: Sequence[int]) -> list[bool]:
        return await self._stories.in_close_friends(author_ids)

    def now(self) -> datetime:
        return self._clock()


class IndexedStory(Protocol):
    """A live story as the stories index knows it (``domain/stories/stories.py``)."""

    @property
    def close_friends(self) -> bool: ...


IndexedStoryT = TypeVar("IndexedStoryT", bound=IndexedStory)


def media_urls_signed(owner: UserRecord | None, *, in_message: bool = False) -> bool:
    """Whether the URLs of media need a signature that expires: a private account's
    media, and anything sent in a direct message. Every surface that hands out a media URL
    asks this, and so does the route that serves one without a signature."""
    return in_message or owner is None or owner.is_private


def visible_comment_count(
    total: int, *, blocked: AbstractSet[int], comments_by_commenter: Mapping[int, int]
) -> int:
    """A post's comment count as the viewer sees it: ``total`` (its live comments, replies
    included) less those by anyone in ``blocked`` (the viewer's block set), counted from
    ``comments_by_commenter`` (the post's live comments per commenter, at least for the
    blocked ones). The two are cached apart and may drift by a write: never below zero."""
    hidden = sum(
        comments for commenter, comments in comments_by_commenter.items() if commenter in blocked
    )
    return max(total - hidden, 0)


async def message_request_members(
    state: AppState, sessions: ShardSessions, actor_id: int, member_ids: Sequence[int]
) -> list[int]:
    """The members for whom a thread from ``actor_id`` is a message request (their
    REQUESTS folder, not PRIMARY): private accounts that do not follow the actor."""
    users = await direct(state, sessions, actor_id).users(list(member_ids))
    private = [user.id for user in users if user is not None and user.is_private]
    found = []
    for member_id in private:
        (follows,) = await following_flags(state, sessions, member_id, [actor_id])
        if not follows:
            found.append(member_id)
    return found


def private_account() -> Forbidden:
    return Forbidden("This account is private: follow it and wait for approval to see this")


class Visibility:
    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.viewer_id = facts.viewer_id

    # Users ------------------------------------------------------------------------------

    async def unblocked(self, user_ids: Sequence[int]) -> list[int]:
        """Those of ``user_ids`` with no block with the viewer, either way."""
        blocked = await self.facts.blocked()
        return [user_id for user_id in user_ids if user_id not in blocked]

    # Threads ----------------------------------------------------------------------------

    def in_thread(self, members: Sequence[ThreadMemberRecord]) -> bool:
        return any(member.user_id == self.viewer_id for member in members)

    async def hidden_senders(self) -> set[int]:
        """Whose messages the viewer may not read, nor have counted as unread: anyone on
        either side of a block with them."""
        return await self.facts.blocked()

    async def messages(self, rows: Sequence[MessageRecord]) -> list[MessageRecord]:
        hidden = await self.hidden_senders()
        return [row for row in rows if row.sender_id not in hidden]

    async def users(self, ids: Sequence[int]) -> list[UserRecord | None]:
        rows, blocked = await asyncio.gather(self.facts.users(ids), self.facts.blocked())
        return [row if row is not None and row.id not in blocked else None for row in rows]

    async def user(self, user_id: int) -> UserRecord | None:
        (row,) = await self.users([user_id])
        return row

    async def require_user(self, user_id: int) -> UserRecord:
        row = await self.user(user_id)
        if row is None:
            raise NotFound("No such user")
        return row

    async def visible_rows(self, rows: Sequence[UserRecord]) -> list[UserRecord | None]:
        """Users already read (a search's rows): the same rule, without reading them again."""
        blocked = await self.facts.blocked()
        return [row if row.deleted_at is None and row.id not in blocked else None for row in rows]

    async def content_visible(self, owners: Sequence[UserRecord]) -> list[bool]:
        """Whether the viewer may see each owner's posts and follower lists."""
        private = [owner.id for owner in owners if owner.is_private and owner.id != self.viewer_id]
        follows = dict(zip(private, await self.facts.follows(private), strict=True))
        return [follows.get(owner.id, True) for owner in owners]

    async def require_content_access(self, owner: UserRecord) -> None:
        (allowed,) = await self.content_visible([owner])
        if not allowed:
            raise private_account()

    # Posts and comments -----------------------------------------------------------------

    async def posts(self, ids: Sequence[int]) -> list[PostRecord | None]:
        rows = await self.facts.posts(ids)
        author_ids = list(dict.fromkeys(row.author_id for row in rows if row is not None))
        authors = [author for author in await self.users(author_ids) if author is not None]
        allowed = {
            author.id
            for author, ok in zip(authors, await self.content_visible(authors), strict=True)
            if ok
        }
        return [row if row is not None and row.author_id in allowed else None for row in rows]

    async def post(self, post_id: int) -> PostRecord | None:
        (row,) = await self.posts([post_id])
        return row

    async def require_post(self, post_id: int) -> PostRecord:
        row = await self.post(post_id)
        if row is None:
            raise NotFound("No such post")
        return row

    async def discoverable(self, ids: Sequence[int]) -> list[PostRecord]:
        """Explore's rule: posts the viewer may see from public accounts they neither are
        nor follow (blocks either way are out already), in the order given."""
        rows = [row for row in await self.posts(ids) if row is not None]
        author_ids = list(dict.fromkeys(row.author_id for row in rows))
        authors, follows = await asyncio.gather(
            self.users(author_ids), self.facts.follows(author_ids)
        )
        strangers = {
            author.id
            for author, followed in zip(authors, follows, strict=True)
            if author is not None
            and not author.is_private
            and not followed
            and author.id != self.viewer_id
        }
        return [row for row in rows if row.author_id in strangers]

    async def comments(self, ids: Sequence[int]) -> list[CommentRecord | None]:
        rows = await self.facts.comments(ids)
        live = [row for row in rows if row is not None]
        authors, posts = await asyncio.gather(
            self.users(list(dict.fromkeys(row.author_id for row in live))),
            self.posts(list(dict.fromkeys(row.post_id for row in live))),
        )
        visible_authors = {author.id for author in authors if author is not None}
        visible_posts = {post.id for post in posts if post is not None}
        return [
            row
            if row is not None and row.author_id in visible_authors and row.post_id in visible_posts
            else None
            for row in rows
        ]

    async def comment(self, comment_id: int) -> CommentRecord | None:
        (row,) = await self.comments([comment_id])
        return row

    async def require_comment(self, comment_id: int) -> CommentRecord:
        row = await self.comment(comment_id)
        if row is None:
            raise NotFound("No such comment")
        return row

    # Stories ----------------------------------------------------------------------------

    async def story_authors(self, author_ids: Sequence[int]) -> dict[int, UserRecord]:
        """The authors whose stories the viewer may see (close-friends stories aside)."""
        authors = [row for row in await self.users(author_ids) if row is not None]
        allowed = await self.content_visible(authors)
        return {author.id: author for author, ok in zip(authors, allowed, strict=True) if ok}

    async def close_friend_audiences(self, author_ids: Sequence[int]) -> set[int]:
        """The authors whose close-friends stories the viewer may see."""
        others = [author_id for author_id in author_ids if author_id != self.viewer_id]
        if self.viewer_id is None:
            return set()
        flags = await self.facts.in_close_friends(others)
        return {self.viewer_id} | {
            author_id for author_id, flag in zip(others, flags, strict=True) if flag
        }

    async def tray_entries(
        self, entries: Mapping[int, Sequence[IndexedStoryT]]
    ) -> dict[int, list[IndexedStoryT]]:
        """Of each author's live stories as the index lists them (no rows read), those the
        viewer may see: authors whose content is visible, and close-friends stories only
        of lists the viewer is on. Authors with nothing left are left out."""
        authors = await self.story_authors(
            [author_id for author_id, live in entries.items() if live]
        )
        inner_circles = await self.close_friend_audiences(
            [
                author_id
                for author_id in authors
                if any(entry.close_friends for entry in entries[author_id])
            ]
        )
        shown = {
            author_id: [
                entry
                for entry in entries[author_id]
                if not entry.close_friends or author_id in inner_circles
            ]
            for author_id in authors
        }
        return {author_id: live for author_id, live in shown.items() if live}

    def sees_story_views(self, story: StoryRecord) -> bool:
        """Only a story's author learns who saw it, or how many."""
        return self.viewer_id is not None and self.viewer_id == story.author_id

    async def stories(self, ids: Sequence[int]) -> list[StoryRecord | None]:
        now = self.facts.now()
        rows = [
            row if row is not None and row.expires_at > now else None
            for row in await self.facts.stories(ids)
        ]
        live = [row for row in rows if row is not None]
        authors = await self.story_authors(list(dict.fromkeys(row.author_id for row in live)))
        inner_circles = await self.close_friend_audiences(
            list(
                dict.fromkeys(
                    row.author_id
                    for row in live
                    if row.audience == "close_friends" and row.author_id in authors
                )
            )
        )
        return [
            row
            if row is not None
            and row.author_id in authors
            and (row.audience != "close_friends" or row.author_id in inner_circles)
            else None
            for row in rows
        ]

    async def require_story(self, story_id: int) -> StoryRecord:
        (row,) = await self.stories([story_id])
        if row is None:
            raise NotFound("No such story (it may have expired)")
        return row

    async def feed_posts(self, ids: Sequence[int]) -> list[PostRecord]:
        """The visible posts among feed entries, by the viewer or by accounts they follow."""
        rows = [row for row in await self.posts(ids) if row is not None]
        others = list(
            dict.fromkeys(row.author_id for row in rows if row.author_id != self.viewer_id)
        )
        followed = dict(zip(others, await self.facts.follows(others), strict=True))
        return [
            row
            for row in rows
            if row.author_id == self.viewer_id or followed.get(row.author_id, False)
        ]


class DirectFacts:
    """Facts read straight from the caches: for the rules behind writes, workers and
    anything else outside a GraphQL operation. The viewer's block set is read once."""

    def __init__(self, state: AppState, sessions: ShardSessions, viewer_id: int | None) -> None:
        self._state = state
        self._sessions = sessions
        self._viewer_id = viewer_id
        # A future, not a value: concurrent questions share the one read.
        self._blocked: asyncio.Future[set[int]] | None = None

    @property
    def viewer_id(self) -> int | None:
        return self._viewer_id

    async def users(self, ids: Sequence[int]) -> list[UserRecord | None]:
        return await load_users(self._state, self._sessions, ids)

    async def posts(self, ids: Sequence[int]) -> list[PostRecord | None]:
        return await load_posts(self._state, self._sessions, ids)

    async def comments(self, ids: Sequence[int]) -> list[CommentRecord | None]:
        return await load_comments(self._state, self._sessions, ids)

    async def follows(self, ids: Sequence[int]) -> list[bool]:
        viewer_id = self._viewer_id
        if viewer_id is None or not ids:
            return [False] * len(ids)
        return await following_flags(self._state, self._sessions, viewer_id, list(ids))

    async def blocked(self) -> set[int]:
        if self._viewer_id is None:
            return set()
        if self._blocked is None:
            self._blocked = asyncio.ensure_future(
                block_set(self._state, self._sessions, self._viewer_id)
            )
        return await self._blocked

    async def stories(self, ids: Sequence[int]) -> list[StoryRecord | None]:
        return await load_stories(self._state, self._sessions, ids)

    async def in_close_friends(self, author_ids: Sequence[int]) -> list[bool]:
        if self._viewer_id is None:
            return [False] * len(author_ids)
        return await in_close_friends(self._state, self._sessions, self._viewer_id, author_ids)

    def now(self) -> datetime:
        return self._state.clock()


def direct(state: AppState, sessions: ShardSessions, viewer_id: int | None) -> Visibility:
    return Visibility(DirectFacts(state, sessions, viewer_id))
