"""Text from outside made safe to print, store and serve. Pure.

Routers choose their reason phrases, error pages and lines; DHCP clients choose their
hostnames; a configured URL may carry a password. None of it may move a terminal's
cursor, retitle its window, reorder a line with bidi controls, grow a log without bound,
or show the password: `printable` escapes and cuts, `redact` hides the password, and
`log_safe` does both, for anything that reaches a log, a database or an answer.
"""

from __future__ import annotations

import json
import re
import unicodedata

# Shown as escapes (`\x1b`, `\u202e`): C0 and C1 controls and DEL (Cc), format
# characters such as the bidi overrides (Cf), line and paragraph separators (Zl, Zp),
# and lone surrogates (Cs), which could not even be written out as UTF-8.
_ESCAPED_CATEGORIES = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))
ELLIPSIS = "…"
# An error text as printed on a run's line and stored in router_endpoints.last_error.
ERROR_LIMIT = 300
# A printed line (a router's line in a run's log, a check's line): a safety net, since
# every part of it is bounded already.
LINE_LIMIT = 2000

# A run of text up to the first `?`, `#` or white space: the scheme, user info, host and
# path of a URL written in it. Its user info ends at the last `@` (a raw `@` or `/` in a
# password is not valid, but must not show the rest of the password either).
_URL_SPAN = re.compile(r"[^?#\s]+")


def _shown(ch: str) -> str:
    if unicodedata.category(ch) in _ESCAPED_CATEGORIES:
        return ch.encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return ch


def printable(text: str, limit: int | None = None, *, middle: bool = False) -> str:
    """`text` with control, format and separator characters shown as escapes, and at most
    `limit` characters long: cut at the end, or in the middle (`middle=True`, for errors
    whose cause comes last), with an ellipsis. An escape is never cut in half."""
    if limit is not None and len(text) > 2 * limit:
        text = text[:limit] + text[-limit:]  # every character shows as one or more
    pieces = [_shown(ch) for ch in text]
    if limit is None or sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    budget = limit - len(ELLIPSIS)
    head_budget = budget // 2 if middle else budget
    head, size = [], 0
    for piece in pieces:
        if size + len(piece) > head_budget:
            break
        head.append(piece)
        size += len(piece)
    tail: list[str] = []
    if middle:
        for piece in reversed(pieces):
            if size + len(piece) > budget:
                break
            tail.append(piece)
            size += len(piece)
    return "".join(head) + ELLIPSIS + "".join(reversed(tail))


def _redact_span(match: re.Match) -> str:
    span = match.group(0)
    start = span.find("://")
    at = span.rfind("@")
    if start < 0 or at < start + 3:
        return span
    user, colon, _ = span[start + 3:at].partition(":")
    # Keep the user name (it says which account), unless it could be a token or hold the
    # password's tail: then the whole user info goes.
    shown = f"{user}:***" if colon and user and not set(user) & set("@/") else "***"
    return f"{span[:start + 3]}{shown}{span[at:]}"


def redact(text: str) -> str:
    """Every URL's user info in `text` hidden: `http://admin:***@host/...` (the user name is
    kept), `http://***@host/...` for a user info without a password."""
    return _URL_SPAN.sub(_redact_span, text) if "@" in text else text


def log_safe(text: str, limit: int = ERROR_LIMIT) -> str:
    """Redacted, escaped and cut in the middle: an error or anything a router sent, ready for
    a log line, a database column or an API answer."""
    return printable(redact(text), limit, middle=True)


_NOT_PLAIN_ASCII = re.compile(r"[^\x00-\x7e]")


def _json_escape(match: re.Match) -> str:
    ch = match.group(0)
    if unicodedata.category(ch) in _ESCAPED_CATEGORIES:
        return json.dumps(ch)[1:-1]  # `\u202e`, or a surrogate pair for an astral character
    return ch


def terminal_json(value) -> str:
    """JSON for a terminal: readable non-ASCII text (`Zoë`), but every character printable()
    escapes written as a JSON escape, so the output parses to the same value and cannot
    move a cursor or reorder a line. (json itself escapes only C0 controls.)"""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return text if text.isascii() and "\x7f" not in text else _NOT_PLAIN_ASCII.sub(_json_escape, text)
