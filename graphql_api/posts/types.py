"""GraphQL types for posts and comments, and pages of posts.

A page of posts is read ahead before its fields resolve: the query's selection says what
to read (``wanted_fields``), the domain plans it in two round trips
(``domain/posts/pages.py``), and what it found primes the operation's loaders
(``prime_page``); the visibility rules run, and then each relation the page shows is
loaded for all its posts at once (``load_page``). Every field reads through its loader,
which by then holds the value: no field awaits a future of its own on a warm page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types.nodes import SelectedField, Selection

from db.accounts.records import UserRecord as UserRow
from db.posts.caches import CACHED_LIST_LENGTH
from db.posts.records import CommentRecord as CommentRow
from db.posts.records import PostRecord as PostRow
from domain.errors import BadUserInput
from domain.posts import comments, posts
from domain.posts.pages import PostFields, read_ahead
from domain.posts.text import parse_hashtags

# Users show their posts, and posts their authors: the modules import each other whole,
# so either may be imported first, and are read as fields resolve.
from graphql_api.accounts import types as accounts_types
from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.context import Info
from graphql_api.loader import Loaded, Loader, fill, then
from graphql_api.media.loaders import MediaLoaders
from graphql_api.media.types import Media, media_of
from graphql_api.node import Node
from graphql_api.posts.loaders import PostLoaders, prime_page
from graphql_api.relay import (
    Connection,
    build_connection,
    decode_cursor,
    encode_cursor,
    has_visible_next,
    page_size,
    to_global_id,
)

if TYPE_CHECKING:
    from graphql_api.accounts.types import User

UserType = Annotated["User", strawberry.lazy("graphql_api.accounts.types")]


@strawberry.type(description="A photo or video post.")
class Post(Node):
    row: strawberry.Private[PostRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Post", self.row.id)

    @strawberry.field
    def caption(self) -> str:
        return self.row.caption

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.row.updated_at

    @strawberry.field(description="Hashtags in the caption, lower-cased, without '#'.")
    def hashtags(self) -> list[str]:
        return parse_hashtags(self.row.caption)

    @strawberry.field(graphql_type=UserType | None)
    def author(self, info: Info) -> Loaded[UserType | None]:
        return accounts_types.visible_user(info, self.row.author_id)

    @strawberry.field(description="Existing users @mentioned in the caption.")
    async def mentions(self, info: Info) -> list[UserType]:
        ids = await info.context.loaders.of(PostLoaders).mentions.load(self.row.id)
        return await accounts_types.visible_users(info, ids)

    @strawberry.field(graphql_type=int)
    def like_count(self, info: Info) -> Loaded[int]:
        return info.context.loaders.of(PostLoaders).like_count.get(self.row.id)

    @strawberry.field(graphql_type=int, description="All comments, replies included.")
    def comment_count(self, info: Info) -> Loaded[int]:
        return info.context.loaders.of(PostLoaders).comment_count.get(self.row.id)

    @strawberry.field(graphql_type=bool)
    def viewer_has_liked(self, info: Info) -> Loaded[bool]:
        return info.context.loaders.of(PostLoaders).viewer_liked.get(self.row.id)

    @strawberry.field(
        graphql_type=list[Media],
        description="The photos and videos, in order (a carousel when several); empty for "
        "a caption-only post.",
    )
    def media(self, info: Info) -> Loaded[list[Media]]:
        if not self.row.media_ids:
            return []
        media_ids = list(self.row.media_ids)
        # Signed or not by its author's account (a visible post's author: read as stored).
        return then(
            info.context.loaders.of(AccountLoaders).user.get(self.row.author_id),
            lambda author: media_of(info, media_ids, owner=author),
        )

    @strawberry.field(description="A post of one video: shown in reelsFeed, counts views.")
    def is_reel(self) -> bool:
        return self.row.is_reel

    @strawberry.field(
        graphql_type=int | None, description="People who watched this reel (null for other posts)."
    )
    def view_count(self, info: Info) -> Loaded[int | None]:
        if not self.row.is_reel:
            return None
        return info.context.loaders.of(PostLoaders).view_count.get(self.row.id)

    @strawberry.field(graphql_type=bool, description="Whether the viewer saved the post.")
    def viewer_has_saved(self, info: Info) -> Loaded[bool]:
        return info.context.loaders.of(PostLoaders).viewer_saved.get(self.row.id)

    @strawberry.field(description="Top-level comments, oldest first.")
    async def comments(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Comment]:
        return await _comment_page(
            info, owner_id=self.row.id, replies=False, first=first, after=after
        )


@strawberry.type(description="A comment on a post, or a reply to one.")
class Comment(Node):
    row: strawberry.Private[CommentRow]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Comment", self.row.id)

    @strawberry.field
    def body(self) -> str:
        return self.row.body

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field(graphql_type=UserType | None)
    def author(self, info: Info) -> Loaded[UserType | None]:
        return accounts_types.visible_user(info, self.row.author_id)

    @strawberry.field
    async def post(self, info: Info) -> Post | None:
        row = await info.context.loaders.visibility.post(self.row.post_id)
        return Post(row=row) if row is not None else None

    @strawberry.field(graphql_type=int)
    def like_count(self, info: Info) -> Loaded[int]:
        return info.context.loaders.of(PostLoaders).comment_like_count.get(self.row.id)

    @strawberry.field(graphql_type=bool)
    def viewer_has_liked(self, info: Info) -> Loaded[bool]:
        return info.context.loaders.of(PostLoaders).viewer_liked_comment.get(self.row.id)

    @strawberry.field(description="Replies, oldest first. Replies have no replies of their own.")
    async def replies(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Comment]:
        return await _comment_page(
            info, owner_id=self.row.id, replies=True, first=first, after=after
        )


async def _comment_page(
    info: Info, *, owner_id: int, replies: bool, first: int | None, after: str | None
) -> Connection[Comment]:
    limit = page_size(first)
    after_id = decode_cursor(after)
    loaders = info.context.loaders
    if after_id is None and limit < CACHED_LIST_LENGTH:
        # The first page of many threads in one batch (a feed page's comment previews).
        post_loaders = loaders.of(PostLoaders)
        loader = post_loaders.first_replies if replies else post_loaders.first_comments
        ids = await loader.load((owner_id, limit + 1))
    else:
        ids = await comments.comment_page_ids(
            info.context.state,
            info.context.sessions,
            owner_id=owner_id,
            replies=replies,
            after_id=after_id,
            limit=limit + 1,
        )
    rows = await loaders.visibility.comments(ids)
    by_id = {row.id: row for row in rows if row is not None}

    async def visible(comment_ids: Sequence[int]) -> list[bool]:
        return [row is not None for row in await loaders.visibility.comments(comment_ids)]

    async def read_after(comment_id: int, count: int) -> list[int]:
        return await comments.comment_page_ids(
            info.context.state,
            info.context.sessions,
            owner_id=owner_id,
            replies=replies,
            after_id=comment_id,
            limit=count,
        )

    return build_connection(
        ids,
        limit=limit,
        cursor_of=lambda comment_id: comment_id,
        node_of=lambda comment_id: Comment(row=by_id[comment_id]) if comment_id in by_id else None,
        has_next=await has_visible_next(
            ids[limit:], visible=visible, read_after=read_after, limit=limit
        ),
    )


def _flatten(selections: Sequence[Selection]) -> list[SelectedField]:
    fields: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            fields.append(selection)
        else:  # fragments: their fields count as if written inline
            fields += _flatten(selection.selections)
    return fields


def _field_names(selected: Sequence[Selection]) -> set[str]:
    """Names of the fields selected on the object a field returns."""
    return {part.name for field in _flatten(selected) for part in _flatten(field.selections)}


def _node_field_names(info: Info) -> set[str]:
    """Names of the fields selected on the posts of a connection (edges.node or nodes)."""
    names: set[str] = set()
    for connection in info.selected_fields:
        for part in _flatten(connection.selections):
            if part.name == "nodes":
                names.update(f.name for f in _flatten(part.selections))
            elif part.name == "edges":
                for edge_field in _flatten(part.selections):
                    if edge_field.name == "node":
                        names.update(f.name for f in _flatten(edge_field.selections))
    return names


def wanted_fields(info: Info) -> set[str]:
    """The fields the query selects on the posts of the connection being resolved."""
    return _node_field_names(info)


def _planned(wanted: set[str]) -> PostFields:
    """What of ``wanted`` a page's planned read can read ahead."""
    return PostFields(
        like_count="likeCount" in wanted,
        comment_count="commentCount" in wanted,
        viewer_has_liked="viewerHasLiked" in wanted,
        viewer_has_saved="viewerHasSaved" in wanted,
        media="media" in wanted,
    )


class PageReader:
    """Reads ahead what a page of posts will show (``domain/posts/pages.py``), the way the
    query asks, and primes the operation's loaders with what it found; the home feed calls
    it for each chunk of entries it reads (``domain.feed.reads.ReadAhead``)."""

    def __init__(self, info: Info, wanted: set[str]) -> None:
        self._context = info.context
        self._fields = _planned(wanted)

    async def __call__(self, post_ids: Sequence[int], *, blocked: set[int] | None = None) -> None:
        context = self._context
        if blocked is None:
            blocked = context.loaders.of(AccountLoaders).known_block_set()
        ahead = await read_ahead(
            context.state,
            viewer_id=context.viewer_id,
            post_ids=post_ids,
            fields=self._fields,
            blocked=blocked,
        )
        if ahead is not None:
            prime_page(context.loaders, ahead)


async def load_page(info: Info, rows: Sequence[PostRow], wanted: set[str]) -> list[Post]:
    """Posts for a page of visible rows, once each relation ``wanted`` of them is loaded
    for all of them at once: what the planned read primed answers at once, the rest is
    one batch per relation, and the fields then find their values held."""
    loaders = info.context.loaders
    post_loaders = loaders.of(PostLoaders)
    accounts = loaders.of(AccountLoaders)
    ids = [row.id for row in rows]
    author_ids = [row.author_id for row in rows]
    relations: list[tuple[Loader[Any, Any], Sequence[Any]]] = []
    if "likeCount" in wanted:
        relations.append((post_loaders.like_count, ids))
    if "commentCount" in wanted:
        relations.append((post_loaders.comment_count, ids))
    if "viewerHasLiked" in wanted:
        relations.append((post_loaders.viewer_liked, ids))
    if "viewerHasSaved" in wanted:
        relations.append((post_loaders.viewer_saved, ids))
    if "author" in wanted:
        relations.append((accounts.visible_user, author_ids))
    if "media" in wanted:
        relations.append((accounts.user, author_ids))
        media_ids = [media_id for row in rows for media_id in row.media_ids]
        relations.append((loaders.of(MediaLoaders).media, media_ids))
    await fill(*relations)
    return [Post(row=row) for row in rows]


# Reads the ids that come after a post id in a connection's list, this many at most.
ReadAfter = Callable[[int, int], Awaitable[Sequence[int]]]


async def post_connection(
    info: Info,
    ids: list[int],
    *,
    limit: int,
    read_after: ReadAfter,
    cursors: Callable[[int], str] | None = None,
) -> Connection[Post]:
    """A page of post ids (``limit + 1`` of them at most) as a connection of visible posts.
    Cursors are the post ids (keyset paging by id), unless ``cursors`` gives each one.
    ``read_after`` reads on past the page when its next post is hidden, so that
    ``hasNextPage`` counts only posts the viewer may see (``has_visible_next``)."""
    wanted = wanted_fields(info)
    # The one past the page is read ahead too: whether it is visible is hasNextPage.
    await PageReader(info, wanted)(ids)
    visibility = info.context.loaders.visibility
    rows = await visibility.posts(ids)
    shown = await load_page(info, [row for row in rows[:limit] if row is not None], wanted)
    page = {post.row.id: post for post in shown}

    async def visible(post_ids: Sequence[int]) -> list[bool]:
        return [row is not None for row in await visibility.posts(post_ids)]

    has_next = await has_visible_next(
        ids[limit:], visible=visible, read_after=read_after, limit=limit
    )
    if cursors is not None:
        return build_connection(
            ids,
            limit=limit,
            cursor_of=cursors,
            node_of=page.get,
            encode=lambda cursor: cursor,
            has_next=has_next,
        )
    return build_connection(
        ids, limit=limit, cursor_of=lambda post_id: post_id, node_of=page.get, has_next=has_next
    )


async def ranked_post_page(
    info: Info, ranked: list[int], *, first: int | None, after: str | None
) -> Connection[Post]:
    """A page of a ranked list of post ids (reels, Explore): the cursor is the position."""
    limit = page_size(first)
    start = decode_cursor(after)
    offset = 0 if start is None else start + 1
    if offset < 0:
        raise BadUserInput("'after' is not a cursor of this list", field="after")
    position = {post_id: index for index, post_id in enumerate(ranked)}

    async def read_after(post_id: int, count: int) -> list[int]:
        return ranked[position[post_id] + 1 : position[post_id] + 1 + count]

    return await post_connection(
        info,
        ranked[offset : offset + limit + 1],
        limit=limit,
        read_after=read_after,
        cursors=lambda post_id: encode_cursor(position[post_id]),
    )


async def profile_posts(
    info: Info, author: UserRow, *, first: int | None, after: str | None
) -> Connection[Post]:
    limit = page_size(first)

    async def read(before_id: int | None, count: int) -> list[int]:
        return await posts.author_post_ids(
            info.context.state,
            info.context.sessions,
            info.context.loaders.visibility,
            author,
            before_id=before_id,
            limit=count,
        )

    ids = await read(decode_cursor(after), limit + 1)
    return await post_connection(info, ids, limit=limit, read_after=read)


async def resolve_post_node(info: Info, post_id: int) -> Post | None:
    if not any(
        isinstance(selected, SelectedField) and selected.name == "node"
        for selected in info.selected_fields
    ):
        # ``nodes(ids)``: the ids batch through the loaders instead.
        row = await info.context.loaders.visibility.post(post_id)
        return Post(row=row) if row is not None else None
    # A post's page (``node(id)``): what it shows is read ahead with the row.
    wanted = _field_names(info.selected_fields)
    await PageReader(info, wanted)([post_id])
    row = await info.context.loaders.visibility.post(post_id)
    if row is None:
        return None
    (post,) = await load_page(info, [row], wanted)
    return post


async def resolve_comment_node(info: Info, comment_id: int) -> Comment | None:
    row = await info.context.loaders.visibility.comment(comment_id)
    return Comment(row=row) if row is not None else None
