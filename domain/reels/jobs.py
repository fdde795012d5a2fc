"""Reels' reactions to events: a new reel joins the reels index."""

from __future__ import annotations

from db.session import ShardSessions
from domain.events import handles
from domain.posts.events import POST_CREATED, PostCreated
from domain.reels.reels import index_reel
from domain.state import AppState


# Inline: the author expects their reel in reelsFeed at once, and this is one ZADD.
@handles(POST_CREATED, name="reels.index", queue="reels", inline=True)
async def index_new_reel(state: AppState, sessions: ShardSessions, event: PostCreated) -> None:
    await index_reel(state, sessions, event.post_id)
