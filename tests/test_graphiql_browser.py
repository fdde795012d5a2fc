"""GraphiQL renders and runs a query in a real browser with no CDN access."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from graphql_api.graphiql import STATIC_URL_PREFIX

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# data: and blob: URLs (inline fonts, the inline favicon) never touch the
# network, so they cannot leak a request to a CDN.
LOCAL_SCHEMES = frozenset({"data", "blob"})
# A cold headless Chromium on a 2-core CI machine can take a while to parse
# the ~1 MB GraphiQL bundle.
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is not installed",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright is not installed",
    ),
]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    # A websocket to the same host:port is still the app itself.
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return scheme, parts.netloc


def _is_local(url: str, own_origin: tuple[str, str]) -> bool:
    return urlsplit(url).scheme in LOCAL_SCHEMES or _origin(url) == own_origin


def test_graphiql_runs_query_from_self_hosted_assets(
    live_server_url: str,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base_url = live_server_url.rstrip("/")
    own_origin = _origin(base_url)
    requested: list[str] = []
    page_errors: list[str] = []
    # The page runs under a strict Content-Security-Policy: a blocked script or style
    # shows up as a console error, not as a page error.
    csp_violations: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("request", lambda request: requested.append(request.url))
            page.on("websocket", lambda ws: requested.append(ws.url))
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on(
                "console",
                lambda message: (
                    csp_violations.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )

            page.goto(f"{base_url}/graphql", wait_until="load")

            editor = page.locator(".graphiql-query-editor .CodeMirror")
            expect(editor).to_be_visible(timeout=TIMEOUT_MS)

            # Typing would fight CodeMirror's bracket auto-closing and
            # autocomplete popups; setValue goes through the same editor
            # change events GraphiQL listens to. GraphiQL re-parses the
            # operation name with a debounce, which is harmless here because
            # both the default query and this one are anonymous.
            editor.evaluate("(el) => el.CodeMirror.setValue('{ __typename }')")
            page.locator(".graphiql-execute-button").click()

            expect(page.locator(".graphiql-response")).to_contain_text(
                '"__typename": "Query"', timeout=TIMEOUT_MS
            )
        finally:
            browser.close()

    assert not page_errors, page_errors
    assert not csp_violations, csp_violations
    assets = [u for u in requested if u.startswith(base_url + STATIC_URL_PREFIX)]
    assert assets, f"no GraphiQL asset was loaded from the app: {requested}"
    foreign = [url for url in requested if not _is_local(url, own_origin)]
    assert not foreign, f"GraphiQL reached outside {base_url}: {foreign}"
