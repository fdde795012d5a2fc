"""Self-hosted GraphiQL page.

Strawberry's stock page pulls React and GraphiQL from unpkg.com, so it renders
blank without internet access. This page loads every script and stylesheet
from ``STATIC_URL_PREFIX``, which the app serves from ``STATIC_DIR`` (see
``static/VENDORED.md`` and ``scripts/vendor_graphiql.sh``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path
from typing import Final

__all__ = ["GRAPHIQL_HEADERS", "STATIC_DIR", "STATIC_URL_PREFIX", "render_graphiql_page"]

STATIC_DIR: Final[Path] = Path(__file__).resolve().parent / "static"
STATIC_URL_PREFIX: Final = "/static/graphiql"

_SCRIPTS: Final = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
)
_STYLESHEETS: Final = ("graphiql.min.css", "plugin-explorer.css")

_DEFAULT_QUERY: Final = """\
# Welcome to Aperture's GraphiQL.
#
# Run a query with Ctrl-Enter or the play button; Ctrl-Space autocompletes.
#
# Sign in with the signUp or logIn mutation, then put its token in the Headers
# tab as {"Authorization": "Bearer <token>"}. Subscriptions run over a websocket
# with the same headers; try, then send yourself a message from another tab:
#
#   subscription Live { messageEvents { kind message { text sender { username } } } }

{
  __typename
}
"""

_PAGE_TEMPLATE: Final = """\
<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Aperture GraphiQL</title>
    <!-- An inline icon stops the browser from requesting /favicon.ico. -->
    <link rel="icon" href="data:," />
{stylesheets}
    <style>
      html,
      body {{
        height: 100%;
        margin: 0;
        overflow: hidden;
      }}

      #graphiql {{
        height: 100vh;
      }}
    </style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL&hellip;</div>
{scripts}
    <script>
      (function () {{
        "use strict";

        var config = {config};

        function absoluteUrl(path, wsScheme) {{
          var url = new URL(path, window.location.href);
          if (wsScheme) {{
            url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
          }}
          url.hash = "";
          return url.toString();
        }}

        var fetcherOptions = {{ url: absoluteUrl(config.graphqlPath, false) }};
        if (config.subscriptionsPath !== null) {{
          // The UMD bundle includes graphql-ws, which speaks
          // graphql-transport-ws; the socket only opens for subscriptions.
          fetcherOptions.subscriptionUrl = absoluteUrl(
            config.subscriptionsPath,
            true,
          );
        }}

        var fetcher = GraphiQL.createFetcher(fetcherOptions);
        var explorer = GraphiQLPluginExplorer.explorerPlugin();

        ReactDOM.createRoot(document.getElementById("graphiql")).render(
          React.createElement(GraphiQL, {{
            fetcher: fetcher,
            plugins: [explorer],
            defaultQuery: config.defaultQuery,
            defaultEditorToolsVisibility: true,
            isHeadersEditorEnabled: true,
            shouldPersistHeaders: true,
            inputValueDeprecation: true,
          }}),
        );
      }})();
    </script>
  </body>
</html>
"""


# json.dumps alone would let a "</script>" inside a value end the inline
# script early; escaping <, > and & keeps it inert yet equal in JS.
_SCRIPT_ESCAPES: Final = str.maketrans(
    {
        "<": "\\u003c",
        ">": "\\u003e",
        "&": "\\u0026",
    },
)


def _asset_url(name: str) -> str:
    return html.escape(f"{STATIC_URL_PREFIX}/{name}", quote=True)


def _stylesheet_tag(name: str) -> str:
    return f'    <link rel="stylesheet" href="{_asset_url(name)}" />'


def _script_tag(name: str) -> str:
    return f'    <script src="{_asset_url(name)}"></script>'


def render_graphiql_page(
    *,
    graphql_path: str = "/graphql",
    subscriptions_path: str | None = "/graphql",
) -> str:
    """Return the GraphiQL HTML page.

    ``graphql_path`` and ``subscriptions_path`` are resolved against the
    page's own ``location`` in the browser, so relative and absolute paths
    both work and the host/port the page was loaded from is reused.
    Subscriptions use a ``ws://``/``wss://`` URL matching the page's scheme;
    pass ``subscriptions_path=None`` to disable them.
    """
    config = {
        "graphqlPath": graphql_path,
        "subscriptionsPath": subscriptions_path,
        "defaultQuery": _DEFAULT_QUERY,
    }
    return _PAGE_TEMPLATE.format(
        stylesheets="\n".join(map(_stylesheet_tag, _STYLESHEETS)),
        scripts="\n".join(map(_script_tag, _SCRIPTS)),
        config=json.dumps(config).translate(_SCRIPT_ESCAPES),
    )


def _content_security_policy() -> str:
    """Scripts from our own origin plus the page's one inline script, by its hash."""
    page = render_graphiql_page()
    start = page.rindex("<script>") + len("<script>")
    inline = page[start : page.index("</script>", start)]
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    return (
        "default-src 'none'; "
        f"script-src 'self' 'sha256-{digest}'; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; "
        "connect-src 'self'; worker-src 'self' blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


GRAPHIQL_HEADERS: Final = {"Content-Security-Policy": _content_security_policy()}
