"""GraphiQL renders and runs a query in a real browser with no CDN access."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
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


def _sign_up(base_url: str, username: str) -> tuple[str, str]:
    """A new account's id and token, over the running server's HTTP."""
    answer = httpx.post(
        f"{base_url}/graphql",
        json={
            "query": "mutation($u: String!, $e: String!) { signUp(input: {username: $u, "
            'email: $e, password: "password123"}) { token user { id } } }',
            "variables": {"u": username, "e": f"{username}@example.com"},
        },
        timeout=10,
    ).json()["data"]["signUp"]
    return answer["user"]["id"], answer["token"]


def test_graphiql_runs_a_subscription_and_shows_messages_as_they_arrive(
    live_server_url: str,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base_url = live_server_url.rstrip("/")
    ana_id, ana_token = _sign_up(base_url, "gi.ana")
    _, ben_token = _sign_up(base_url, "gi.ben")
    sockets: list[str] = []
    page_errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            # What a developer types in the headers tab, kept by GraphiQL between visits;
            # the fetcher sends the headers as connection_init's payload.
            headers = json.dumps({"Authorization": f"Bearer {ana_token}"})
            page.add_init_script(
                f"window.localStorage.setItem('graphiql:headers', {json.dumps(headers)});"
            )
            page.goto(f"{base_url}/graphql", wait_until="load")
            editor = page.locator(".graphiql-query-editor .CodeMirror")
            expect(editor).to_be_visible(timeout=TIMEOUT_MS)
            subscription = "subscription Live { messageEvents { kind message { text } } }"
            editor.evaluate(f"(el) => el.CodeMirror.setValue({json.dumps(subscription)})")
            # GraphiQL parses the editor's text after a debounce, and only a parsed
            # subscription goes to the websocket.
            page.wait_for_timeout(1000)
            page.locator(".graphiql-execute-button").click()
            # The subscription's first event, a GAP, says it is live.
            expect(page.locator(".graphiql-response")).to_contain_text("GAP", timeout=TIMEOUT_MS)

            for text in ("hello from ben", "second message"):
                sent = httpx.post(
                    f"{base_url}/graphql",
                    json={
                        "query": "mutation($u: ID!, $t: String!) { sendMessage(input: "
                        "{userId: $u, text: $t}) { message { seq } } }",
                        "variables": {"u": ana_id, "t": text},
                    },
                    headers={"Authorization": f"Bearer {ben_token}"},
                    timeout=10,
                )
                assert "errors" not in sent.json(), sent.json()
                expect(page.locator(".graphiql-response")).to_contain_text(text, timeout=TIMEOUT_MS)
        finally:
            browser.close()

    assert not page_errors, page_errors
    assert sockets == [base_url.replace("http://", "ws://") + "/graphql"]
