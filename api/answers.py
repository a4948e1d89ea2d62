"""Answers that change only when the collector commits: ETag, Last-Modified, 304, and a cache.

The state an answer is computed from is named by `reads.file_state` (the files'
identity, size and mtime) and `reads.data_state` (the last run, the lease rows,
read in the request's snapshot). An answer is cached under that state plus the
route and its resolved parameters, and its ETag is a hash of the same key, so a
repeat request costs a few stat() calls and one small query, and answers 304 when
the client already has it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime, timezone

from flask import Response, current_app, request
from werkzeug.http import http_date, is_resource_modified

from api import db
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


def encode_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def respond(
    name: str,
    params: tuple,
    compute: Callable[[], object],
    *,
    encode: Callable[[object], bytes] = encode_json,
    not_before: float | None = None,
) -> Response:
    """A JSON answer to a conditional GET, computed only when no equal answer is cached.

    `params` are the resolved parameters (the period a default stands for, say),
    so a default that moves with the clock still names a different answer.
    `not_before` is when such a default last moved: Last-Modified is never older.
    """
    conn = db.connection()
    files = reads.file_state(db.data_dir())
    key = (name, params, files, reads.data_state(conn))
    etag = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    moments = [t for t in (reads.last_run_at(conn), not_before) if t is not None]
    modified = datetime.fromtimestamp(int(max(moments)), timezone.utc) if moments else None
    headers = {"ETag": f'"{etag}"', "Cache-Control": "no-cache"}
    if modified is not None:
        headers["Last-Modified"] = http_date(modified)
    if not is_resource_modified(request.environ, etag=etag, last_modified=modified):
        return Response(status=304, headers=headers)
    cache: AnswerCache = current_app.extensions["netstat_answers"]
    body = cache.get(key)
    if body is None:
        body = encode(compute())
        cache.put(key, body)
    return Response(body, status=200, headers=headers, content_type=JSON)
