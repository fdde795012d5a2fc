"""The stories tray: the viewer's own stories first, then the accounts the viewer follows
that have live stories, those with stories the viewer has not seen first, then by their
newest story.

Its cost does not grow with how many accounts the viewer follows in round trips, only in
commands: one round trip reads whom the viewer follows and what they have seen, a second
reads every followee's story index in one pipeline, and the authors, stories and media
come through the policy's loaders. Close-friends lists are read only for authors who have
a close-friends story live.
"""

from __future__ import annotations

from dataclasses import dataclass

from db.accounts.caches import AccountCaches
from db.redis import read_together
from db.session import ShardSessions
from db.stories.caches import StoryCaches
from domain.accounts.relations import followee_ids
from domain.state import AppState
from domain.stories.stories import live_entries, seen_story_ids
from domain.visibility import Visibility


@dataclass(frozen=True)
class TrayEntry:
    author_id: int
    story_ids: list[int]  # oldest first: the order they play in
    unseen: int
    seen: frozenset[int]  # of story_ids, those the viewer has seen
    latest_expires_ms: float


async def tray(
    state: AppState, sessions: ShardSessions, visibility: Visibility, viewer_id: int
) -> list[TrayEntry]:
    replies = await read_together(
        state.runtime.redis,
        [
            state.of(AccountCaches).following_sets.plan_members(viewer_id),
            state.of(StoryCaches).stories_seen.plan_read([viewer_id]),
        ],
    )
    following = replies[0] if replies is not None else None
    if following is None:
        following = await followee_ids(state, sessions, viewer_id)
    seen = await seen_story_ids(
        state, sessions, viewer_id, cached=replies[1][viewer_id] if replies is not None else None
    )
    entries = await live_entries(state, sessions, sorted(following | {viewer_id}))
    tray_entries = [
        TrayEntry(
            author_id=author_id,
            story_ids=[entry.story_id for entry in shown],
            unseen=sum(1 for entry in shown if entry.story_id not in seen),
            seen=frozenset(entry.story_id for entry in shown if entry.story_id in seen),
            latest_expires_ms=max(entry.expires_ms for entry in shown),
        )
        for author_id, shown in (await visibility.tray_entries(entries)).items()
    ]
    tray_entries.sort(
        key=lambda entry: (
            entry.author_id != viewer_id,
            entry.unseen == 0,
            -entry.latest_expires_ms,
            entry.author_id,
        )
    )
    return tray_entries
