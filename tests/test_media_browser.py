"""A seeded feed's images load in headless Chromium from the URLs the API returns."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import httpx
import pytest

from aperture.seed import DEMO_PASSWORD, generate_graph, seed_graph, seed_media
from db.runtime import Runtime
from db.session import ShardSessions
from infra.servers import Servers
from infra.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None, reason="playwright is not installed"
    ),
]

FEED = """{ homeFeed(first: 12) { edges { node { media {
    width height url(width: 640) variants(format: JPEG) { url } } } } } }"""


def _seed(settings: Settings, servers: Servers) -> None:
    async def run() -> None:
        runtime = Runtime.connect(settings, servers)
        try:
            sessions = ShardSessions(runtime.databases)
            graph = generate_graph(12, seed=4, mean_following=6)
            seeded = await seed_graph(sessions, graph, prefix="browser", posts_per_user=2)
            await seed_media(
                sessions, runtime.object_store, graph, seeded.user_ids, images=6, videos=1
            )
            await runtime.redis.flushdb()
        finally:
            await runtime.close()

    asyncio.run(run())


def test_seeded_feed_images_load_in_chromium(
    settings: Settings, servers: Servers, live_server_url: str
) -> None:
    from playwright.sync_api import sync_playwright

    _seed(settings, servers)
    with httpx.Client(base_url=live_server_url, timeout=30) as client:
        logged_in = client.post(
            "/graphql",
            json={
                "query": 'mutation($p: String!) { logIn(username: "browser0", password: $p)'
                " { token } }",
                "variables": {"p": DEMO_PASSWORD},
            },
        ).json()
        token = logged_in["data"]["logIn"]["token"]
        feed = client.post(
            "/graphql", json={"query": FEED}, headers={"Authorization": f"Bearer {token}"}
        ).json()
    urls = [
        url
        for edge in feed["data"]["homeFeed"]["edges"]
        for media in edge["node"]["media"]
        for url in [media["url"], *(variant["url"] for variant in media["variants"])]
    ]
    assert len(urls) >= 6, feed
    page_html = "".join(f'<img src="{url}" alt="">' for url in urls)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.set_content(page_html, wait_until="load")
            sizes = page.evaluate(
                "() => [...document.images].map(img => [img.complete, img.naturalWidth])"
            )
        finally:
            browser.close()
    assert failed == []
    assert all(complete and width > 0 for complete, width in sizes), json.dumps(sizes)
