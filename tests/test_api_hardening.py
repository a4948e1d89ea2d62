"""Hardening of the app itself, through a real gunicorn on 127.0.0.1.

- Preconditions (RFC 9110 section 13.2.2): a failed If-Match or If-Unmodified-Since is a
  JSON 412, never a 304; If-Match is evaluated before If-None-Match.
- Every answer the app produces is JSON with the security headers (the dashboard's page
  and files aside): no HTML redirect, no empty `OPTIONS` page.
- Only the hosts it is meant to be reached by: IP literals, localhost, the machine's own
  names, and the names configured in NETSTAT_ALLOWED_HOSTS; any other Host header (a
  DNS-rebinding page's) gets a JSON 400.

`raw_request` sends bytes that no HTTP library would; test_api_deploy.py uses it too.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from conftest import LAPTOP
from werkzeug.http import http_date, parse_date

from api.app import SECURITY_HEADERS

# Answers with an ETag (data answers, the OpenAPI document, the dashboard and its files).
WITH_ETAG = ["/api/v1/usage", "/api/v1/usage?period=2026-11", "/api/v1/periods",
             f"/api/v1/clients/{LAPTOP}/history", "/api/v1/wan/history?granularity=month",
             "/api/v1/leases", "/api/v1/routers", "/api.php?action=combined",
             "/api.php?action=leases", "/api/v1/openapi.json", "/", "/static/dashboard.js"]
# Answers without one.
WITHOUT_ETAG = ["/api/v1/", "/healthz"]
# Answers with a Last-Modified.
WITH_DATE = ["/api/v1/usage?period=2026-11", "/api/v1/leases", "/api.php?action=combined", "/"]


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated name keeps its last value
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def raw_request(url: str, data: bytes, timeout: float = 15) -> RawAnswer | None:
    """Send `data` as it is to the server at `url`; its answer, or None when it closed
    the connection without one. Send `Connection: close` so the answer ends with it."""
    parts = urlsplit(url)
    chunks = []
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered (or hung up) before reading everything: read what it said
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return RawAnswer(status, headers, body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, body = out + rest[:n], rest[n + 2:]
    return out


def request_bytes(method: str, target: str, host: str, *extra: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def assert_security_headers(headers, where: str) -> None:
    lower = {k.lower(): v for k, v in headers.items()}
    assert {k: lower.get(k.lower()) for k in SECURITY_HEADERS} == SECURITY_HEADERS, where


def assert_json_error(status: int, headers, body: bytes, where: str) -> dict:
    """An error answer of ours: JSON with the error shape and the security headers."""
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower.get("content-type") == "application/json", (where, status, lower, body[:200])
    document = json.loads(body)
    assert isinstance(document.get("error"), str) and document["error"], (where, document)
    assert document.get("status") == status, (where, document)
    assert_security_headers(headers, where)
    return document


# --- 10. If-Match and If-Unmodified-Since ---------------------------------------------------


@pytest.mark.parametrize("path", WITH_ETAG + WITHOUT_ETAG)
@pytest.mark.parametrize("if_match", ['"nope"', "nope", 'W/"nope"', '"a", "b"'])
def test_an_if_match_that_matches_nothing_is_a_json_412(api_server, path, if_match):
    r = api_server.get(path, headers={"If-Match": if_match})
    assert r.status_code == 412, (path, r.status_code)
    assert_json_error(412, r.headers, r.content, path)


@pytest.mark.parametrize("path", WITH_ETAG)
def test_head_with_a_failed_if_match_is_412_too(api_server, path):
    r = api_server.request("HEAD", path, headers={"If-Match": '"nope"'})
    assert (r.status_code, r.content) == (412, b"")


@pytest.mark.parametrize("path", WITH_ETAG + WITHOUT_ETAG)
def test_if_match_star_passes(api_server, path):
    plain = api_server.get(path)
    star = api_server.get(path, headers={"If-Match": "*"})
    assert (plain.status_code, star.status_code) == (200, 200)
    if path != "/healthz":  # its age_seconds moves with the clock
        assert star.content == plain.content


@pytest.mark.parametrize("path", WITH_ETAG)
def test_if_match_with_the_current_etag_passes(api_server, path):
    plain = api_server.get(path)
    etag = plain.headers["ETag"]
    for value in (etag, f'"other", {etag}'):
        r = api_server.get(path, headers={"If-Match": value})
        assert (r.status_code, r.content) == (200, plain.content), (path, value)


@pytest.mark.parametrize("path", WITH_ETAG)
def test_if_match_compares_strongly(api_server, path):
    etag = api_server.get(path).headers["ETag"]
    assert not etag.startswith("W/")
    r = api_server.get(path, headers={"If-Match": f"W/{etag}"})
    assert r.status_code == 412


@pytest.mark.parametrize("path", WITH_ETAG)
def test_if_match_is_evaluated_before_if_none_match(api_server, path):
    etag = api_server.get(path).headers["ETag"]
    failed = api_server.get(path, headers={"If-Match": '"nope"', "If-None-Match": etag})
    passed = api_server.get(path, headers={"If-Match": etag, "If-None-Match": etag})
    star = api_server.get(path, headers={"If-Match": "*", "If-None-Match": etag})
    assert (failed.status_code, passed.status_code, star.status_code) == (412, 304, 304)
    assert passed.headers["ETag"] == etag


@pytest.mark.parametrize("path", WITH_DATE)
def test_if_unmodified_since_before_the_last_change_is_412(api_server, path):
    modified = parse_date(api_server.get(path).headers["Last-Modified"])
    earlier = http_date(modified - timedelta(seconds=1))
    r = api_server.get(path, headers={"If-Unmodified-Since": earlier})
    assert_json_error(412, r.headers, r.content, path)
    same = api_server.get(path, headers={"If-Unmodified-Since": http_date(modified)})
    assert same.status_code == 200
    # If-Match decides when both are sent (RFC 9110 section 13.2.2, step 2).
    etag = api_server.get(path).headers["ETag"]
    both = api_server.get(path, headers={"If-Match": etag, "If-Unmodified-Since": earlier})
    assert both.status_code == 200


@pytest.mark.parametrize("path, status", [
    ("/api/v1/usage?period=2026-13", 400), ("/api/v2/usage", 404), ("/api.php", 400),
    ("/api/v1/clients/aa:bb:cc:dd:ee:ff/history", 404)])
def test_preconditions_do_not_change_an_error_answer(api_server, path, status):
    plain = api_server.get(path)
    r = api_server.get(path, headers={"If-Match": '"nope"', "If-Unmodified-Since":
                                      "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert (plain.status_code, r.status_code, r.content) == (status, status, plain.content)
