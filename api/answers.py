"""Answers that change only when the collector commits: ETag, Last-Modified, 304, and a cache.

The state an answer is computed from is named by `queries.file_state` (the files'
identity, size and mtime) and `queries.data_state` (the last run, the lease rows,
read in the request's snapshot). An answer is cached under that state plus the
route and its resolved parameters, and its ETag is a hash of the same key, so a
repeat request costs a few stat() calls and one small query, and answers 304 when
the client already has it.

Preconditions are evaluated here, in RFC 9110's order, for every answer: data
answers call `not_modified` before computing anything; api.app applies it to the
other successful answers (the OpenAPI document, the dashboard and its files) after
they are made. Werkzeug's own conditional handling is not used anywhere: it reads
an If-Match that matches nothing as "not modified" and ignores If-Unmodified-Since.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime, timezone

from flask import Response, current_app, request
from werkzeug.datastructures import ETags
from werkzeug.exceptions import PreconditionFailed
from werkzeug.http import http_date

from api import db, queries
from collector import reads

JSON = "application/json"


class AnswerCache:
    """A small thread-safe LRU of encoded answers."""

    def __init__(self, entries: int):
        self.entries = entries
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is None:
                self.misses += 1
            else:
                self.hits += 1
                self._items.move_to_end(key)
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        if self.entries <= 0:
            return
        with self._lock:
            self._items[key] = body
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)


def _matches(tags: ETags, etag: str | None, weak: bool, *, strong: bool) -> bool:
    if tags.star_tag:  # "*": there is a current representation, the one being answered
        return True
    if etag is None:
        return False
    if strong:
        return not weak and tags.is_strong(etag)
    return tags.contains_weak(etag)


def not_modified(etag: str | None, last_modified: datetime | None, *, weak: bool = False) -> bool:
    """RFC 9110 section 13.2.2 for a GET or HEAD answered with this ETag and date.

    True when the client's copy is current (answer 304); raises PreconditionFailed
    (412) when If-Match matches nothing or, without If-Match, the answer changed after
    If-Unmodified-Since. If-None-Match is only looked at once those pass, and
    If-Modified-Since only without If-None-Match. `etag` is unquoted.
    """
    headers = request.headers
    if "If-Match" in headers:
        # Strong comparison: a weak tag never matches, "*" always does.
        if not _matches(request.if_match, etag, weak, strong=True):
            raise PreconditionFailed("If-Match: the current answer has none of these ETags")
    elif request.if_unmodified_since is not None and last_modified is not None:
        if last_modified > request.if_unmodified_since:
            raise PreconditionFailed("If-Unmodified-Since: the answer changed after that time")
    if "If-None-Match" in headers:
        return _matches(request.if_none_match, etag, weak, strong=False)
    if request.if_modified_since is not None and last_modified is not None:
        return last_modified <= request.if_modified_since
    return False


def encode_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def respond(
    name: str,
    params: tuple,
    compute: Callable[[], object],
    *,
    encode: Callable[[object], bytes] = encode_json,
    content_type: str = JSON,
    not_before: float | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An answer (JSON unless told) to a conditional GET, computed only when no equal answer
    is cached.

    `params` are the resolved parameters (the period a default stands for, say),
    so a default that moves with the clock still names a different answer.
    `not_before` is when such a default last moved: Last-Modified is never older.
    `headers` go on a 200 besides the caching ones (a download's Content-Disposition).
    Answers in another format are another `name`: the cache key and the ETag include it.
    """
    conn = db.connection()
    files = queries.file_state(db.data_dir())
    key = (name, params, files, queries.data_state(conn))
    etag = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    moments = [t for t in (reads.last_run_at(conn), not_before) if t is not None]
    modified = datetime.fromtimestamp(int(max(moments)), timezone.utc) if moments else None
    caching = {"ETag": f'"{etag}"', "Cache-Control": "no-cache"}
    if modified is not None:
        caching["Last-Modified"] = http_date(modified)
    if not_modified(etag, modified):
        return Response(status=304, headers=caching)
    cache: AnswerCache = current_app.extensions["netstat_answers"]
    body = cache.get(key)
    if body is None:
        body = encode(compute())
        cache.put(key, body)
    return Response(body, status=200, headers={**caching, **(headers or {})}, content_type=content_type)
