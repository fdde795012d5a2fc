"""The official GraphQL-over-HTTP audit (graphql-http's ``serverAudits``) against the
real app over real HTTP.

The audit's JavaScript is vendored under ``tests/http_audit/vendor`` (see VENDORED.md)
and run with Node 18+, with no network and no npm install. Every one of its 61 audits,
MUST, SHOULD and MAY alike, must report "ok".
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

AUDIT_DIR = Path(__file__).parent / "http_audit"
VENDOR_DIR = AUDIT_DIR / "vendor"
RUN_AUDIT = AUDIT_DIR / "run_audit.mjs"
AUDIT_COUNT = 61
MIN_NODE_MAJOR = 18  # global fetch
# 61 requests, issued concurrently, each bounded by the script's own request timeout.
REQUEST_TIMEOUT_MS = 15_000
SUBPROCESS_TIMEOUT_S = 60


def _find_node() -> tuple[str | None, str]:
    """The node executable to run the audit with, or None and why not."""
    node = shutil.which("node")
    if node is None:
        return None, "node is not on PATH: the GraphQL-over-HTTP audit needs Node.js 18+"
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"could not run {node} --version: {error}"
    match = re.fullmatch(r"v(\d+)\.\d+\.\d+.*", version)
    if match is None:
        return None, f"unrecognised node version {version!r}"
    if int(match.group(1)) < MIN_NODE_MAJOR:
        return None, f"node {version} is older than {MIN_NODE_MAJOR}: it has no global fetch"
    return node, version


# Decided at collection, so that a skip does not start the live server first.
NODE, NODE_STATUS = _find_node()


def _format_failure(audit: dict[str, Any]) -> str:
    lines = [f"- {audit['id']} [{audit['status']}] {audit['name']}", f"    {audit.get('reason')}"]
    response = audit.get("response")
    if response:
        content_type = response.get("headers", {}).get("content-type")
        body = str(response.get("body", ""))
        if len(body) > 300:
            body = body[:300] + "..."
        lines.append(f"    got {response.get('status')} content-type={content_type!r} body={body}")
    return "\n".join(lines)


def test_vendored_audit_matches_its_checksums() -> None:
    """The vendored files are byte-for-byte those VENDORED.md and vendor.sh pin."""
    sums = (VENDOR_DIR / "SHA256SUMS").read_text().splitlines()
    assert sums, "SHA256SUMS is empty"
    listed = set()
    for line in sums:
        digest, name = line.split(maxsplit=1)
        listed.add(name)
        actual = hashlib.sha256((VENDOR_DIR / name).read_bytes()).hexdigest()
        assert actual == digest, f"{name} differs from SHA256SUMS: run tests/http_audit/vendor.sh"
    present = {
        path.relative_to(VENDOR_DIR).as_posix()
        for path in VENDOR_DIR.rglob("*")
        if path.is_file() and path.name != "SHA256SUMS"
    }
    assert present == listed, f"unlisted or missing vendored files: {present ^ listed}"


@pytest.mark.skipif(NODE is None, reason=NODE_STATUS)
def test_graphql_over_http_audit(live_server_url: str) -> None:
    assert NODE is not None
    url = f"{live_server_url}/graphql"
    try:
        completed = subprocess.run(
            [NODE, str(RUN_AUDIT), url, "--request-timeout-ms", str(REQUEST_TIMEOUT_MS)],
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the audit did not finish within {SUBPROCESS_TIMEOUT_S}s against {url}")
    assert completed.returncode == 0, (
        f"run_audit.mjs exited {completed.returncode}\nstderr:\n{completed.stderr}"
    )
    report = json.loads(completed.stdout)
    audits: list[dict[str, Any]] = report["audits"]

    assert len(audits) == AUDIT_COUNT, f"expected {AUDIT_COUNT} audits, got {len(audits)}"
    failures = [audit for audit in audits if audit["status"] != "ok"]
    assert not failures, (
        f"{len(failures)} of {len(audits)} GraphQL-over-HTTP audits failed "
        f"({report['package']}, summary {report['summary']}):\n"
        + "\n".join(_format_failure(audit) for audit in failures)
    )
