"""GitHub ``repository_dispatch``: start the retraining workflow (.github/workflows/retrain.yml).

``POST {GITHUB_API_URL}/repos/{owner}/{repo}/dispatches`` with ``{"event_type":
"imgrec-drift", "client_payload": {...}}`` (at most 10 top-level keys, GitHub's limit);
GitHub answers ``204 No Content`` when it accepted the event::

    dispatch("acme/digits", {"model": "imgrec", "version": "3"}, token=os.environ["GITHUB_TOKEN"])

Retries with exponential backoff on 5xx, 429 and network errors (at most ``retries`` more
attempts, each waiting ``backoff_s * 2**n``); 401/403, 404 and 422 are answered at once with
an error saying what to fix. ``GITHUB_API_URL`` (as set on GitHub's runners, and on GitHub
Enterprise) overrides the API root, which is also how the tests reach a recording server.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from typing import Any

from imgrec.errors import ConfigError, TriggerError

EVENT_TYPE = "imgrec-drift"
DEFAULT_API_URL = "https://api.github.com"
MAX_PAYLOAD_KEYS = 10  # GitHub refuses client_payload with more top-level properties
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_FIX = {
    401: ("github_unauthorized", "GitHub refused the token (401)", "set GITHUB_TOKEN to a valid "
          "token with the repo scope, or a fine-grained token with Contents: write"),
    403: ("github_unauthorized", "the token may not dispatch events to this repository (403)",
          "give the token Contents: write on the repository (classic: the repo scope)"),
    404: ("github_not_found", "repository not found, or the token cannot see it (404)",
          "check --github-repo / GITHUB_REPOSITORY (owner/name) and the token's access"),
    422: ("github_invalid_payload", "GitHub refused the event (422)",
          "client_payload must be an object with at most 10 top-level keys"),
}  # fmt: skip


def check_repo(repo: str) -> str:
    if not repo or not _REPO.match(repo):
        raise ConfigError(
            f"GitHub repository {repo!r} is not owner/name",
            hint="pass --github-repo owner/name or set GITHUB_REPOSITORY",
        )
    return repo


def check_payload(payload: dict[str, Any]) -> None:
    if len(payload) > MAX_PAYLOAD_KEYS:
        raise ConfigError(
            f"client_payload has {len(payload)} top-level keys; GitHub allows {MAX_PAYLOAD_KEYS}",
            hint="nest the extra fields under one key",
        )


def _send(url: str, body: bytes, token: str, timeout_s: float) -> tuple[int, str]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
            "Content-Type": "application/json",
            "User-Agent": "imgrec-retrain-trigger",
        },
    )
    try:
        # a fresh opener reads the proxy settings of now: urlopen's cached global one keeps
        # whatever proxy the environment named at the process's first download
        with urllib.request.build_opener().open(request, timeout=timeout_s) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")


def dispatch(
    repo: str,
    payload: dict[str, Any],
    *,
    token: str,
    api_url: str = DEFAULT_API_URL,
    event_type: str = EVENT_TYPE,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Send the event; returns ``{"status": 204, "attempts": n, "url": ...}`` once accepted.

    Raises ``TriggerError`` with code ``github_token_missing``, ``github_unauthorized``,
    ``github_not_found``, ``github_invalid_payload``, ``github_server_error`` or
    ``github_unreachable`` (after the retries), and ``ConfigError`` for a bad repo or payload.
    """
    check_repo(repo)
    check_payload(payload)
    if not token:
        raise TriggerError(
            "no GitHub token: the dispatch needs one",
            hint="set GITHUB_TOKEN (repo scope, or fine-grained Contents: write)",
            code="github_token_missing",
        )
    url = f"{api_url.rstrip('/')}/repos/{repo}/dispatches"
    body = json.dumps({"event_type": event_type, "client_payload": payload}).encode()
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            status, text = _send(url, body, token, timeout_s)
        except (urllib.error.URLError, OSError) as exc:
            last = f"cannot reach {url}: {getattr(exc, 'reason', exc)}"
            continue
        if 200 <= status < 300:
            return {"status": status, "attempts": attempt + 1, "url": url}
        if status in _FIX:
            code, message, hint = _FIX[status]
            detail = _message(text)
            raise TriggerError(f"{message}{': ' + detail if detail else ''}", hint=hint, code=code)
        last = f"GitHub answered {status} {_message(text)}".strip()
        if status < 500 and status != 429:
            raise TriggerError(last, hint="see GitHub's API status", code="github_server_error")
    code = "github_unreachable" if last.startswith("cannot reach") else "github_server_error"
    raise TriggerError(
        f"{last} (gave up after {retries + 1} attempts)",
        hint="check the network and GITHUB_API_URL, then run the report again; nothing was "
        "marked as triggered",
        code=code,
    )


def _message(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    return str(doc.get("message", ""))[:200] if isinstance(doc, dict) else ""
