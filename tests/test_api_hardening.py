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
from support import LAPTOP, gunicorn_server
from werkzeug.http import http_date, parse_date

from api.app import SECURITY_HEADERS, create_app

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
    while head.startswith(b"HTTP/1.1 1"):  # an interim answer (100 Continue): the next one counts
        head, _, body = body.partition(b"\r\n\r\n")
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


def assert_json_error(status: int, headers, body: bytes, where: str, *, seed: bool = False) -> dict:
    """An error answer of ours: JSON with the error shape and the security headers.

    `seed`: api.php's own errors may have the seed's shape, `{"error": ...}` alone.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower.get("content-type") == "application/json", (where, status, lower, body[:200])
    document = json.loads(body)
    assert isinstance(document.get("error"), str) and document["error"], (where, document)
    if not (seed and list(document) == ["error"]):
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


# --- 11. Only JSON, and only for our own names ------------------------------------------------

FOREIGN_HOSTS = ["evil.example", "evil.example:8081", "EVIL.example", "127.0.0.1.nip.io",
                 "localhost.evil.example", "10.0.0.1.evil.example", "127.1", "0x7f000001",
                 f"{socket.gethostname()}.evil.example", "[v1.fe]", ""]


def own_hosts(port: int) -> list[str]:
    return ["127.0.0.1", f"127.0.0.1:{port}", "localhost", f"localhost:{port}", "LocalHost",
            "localhost.", "192.168.1.10", "10.0.0.1:80", "[::1]", f"[::1]:{port}", "[fe80::1]",
            "[::ffff:192.168.1.10]:8081", socket.gethostname(), socket.getfqdn()]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
@pytest.mark.parametrize("path", ["/api/v1/usage", "/api/v1", "/", "/static/dashboard.js",
                                  "/healthz", "/api.php?action=wan", "/nothing"])
def test_a_foreign_host_is_a_json_400(api_server, host, path):
    """A page on another site that rebinds its name to the board reads nothing."""
    r = api_server.get(path, headers={"Host": host}, allow_redirects=False)
    assert r.status_code == 400, (host, path, r.status_code)
    error = assert_json_error(400, r.headers, r.content, path)["error"]
    assert error.startswith("Host not served here: ")
    assert "Location" not in r.headers


def test_ip_literals_localhost_and_the_machines_own_names_are_served(api_server):
    port = urlsplit(api_server.url).port
    plain = api_server.get("/api/v1/usage")
    for host in own_hosts(port):
        r = api_server.get("/api/v1/usage", headers={"Host": host})
        assert (r.status_code, r.content) == (200, plain.content), host


def test_configured_names_are_served_and_no_others(api_scenario, tmp_path):
    extra = {"NETSTAT_ALLOWED_HOSTS": " netstat.example.lan, .home.arpa ,"}
    with gunicorn_server(api_scenario.data_dir, tmp_path / "gunicorn.log", now=api_scenario.now,
                         env=extra, workers=1) as server:
        status = {host: server.get("/api/v1/periods", headers={"Host": host}).status_code
                  for host in ["netstat.example.lan", "NETSTAT.example.lan:8081", "home.arpa",
                               "board.home.arpa", "a.b.home.arpa", "127.0.0.1", "localhost",
                               "example.lan", "xnetstat.example.lan", "evilhome.arpa",
                               "home.arpa.evil.example"]}
    assert status == {"netstat.example.lan": 200, "NETSTAT.example.lan:8081": 200, "home.arpa": 200,
                      "board.home.arpa": 200, "a.b.home.arpa": 200, "127.0.0.1": 200,
                      "localhost": 200, "example.lan": 400, "xnetstat.example.lan": 400,
                      "evilhome.arpa": 400, "home.arpa.evil.example": 400}


def test_allowed_hosts_from_the_test_config(tmp_path):
    client = create_app({"DATA_DIR": str(tmp_path), "ALLOWED_HOSTS": ["board.lan"]}).test_client()
    assert client.get("/api/v1/", headers={"Host": "board.lan"}).status_code == 200
    assert client.get("/api/v1/", headers={"Host": "other.lan"}).status_code == 400


@pytest.mark.parametrize("value", ["evil example", "http://board.lan", "board.lan:8081", "board/x",
                                   "*", "..lan"])
def test_a_bad_allowed_hosts_setting_stops_the_app_from_starting(monkeypatch, value):
    monkeypatch.setenv("NETSTAT_ALLOWED_HOSTS", value)
    with pytest.raises(ValueError) as raised:
        create_app()
    assert str(raised.value).startswith(f"NETSTAT_ALLOWED_HOSTS: not a host name: {value.strip()!r}")


def test_no_answer_is_a_redirect(api_server):
    """Werkzeug would answer these with an HTML 308 whose Location names the Host header."""
    for path, status, same_as in [
            # A trailing slash is optional, leading slashes are ignored: the same answer.
            ("/api/v1", 200, "/api/v1/"), ("/api/v1/usage/", 200, "/api/v1/usage"),
            ("/healthz/", 200, "/healthz"), ("//api/v1/usage", 200, "/api/v1/usage"),
            # Doubled slashes inside a path are not merged.
            ("//x", 404, None), ("//evil.example/api/v1/", 404, None), ("/api/v1//usage", 404, None),
            ("/static//dashboard.js", 404, None)]:
        r = api_server.get(path, allow_redirects=False)
        assert (r.status_code, "Location" in r.headers) == (status, False), path
        if same_as:
            assert r.content == api_server.get(same_as).content
        else:
            assert_json_error(status, r.headers, r.content, path)


def _route_paths() -> list[str]:
    app = create_app({"DATA_DIR": "/nonexistent"})
    return sorted(str(rule).replace("<path:mac>", LAPTOP).replace("<path:filename>", "dashboard.js")
                  for rule in app.url_map.iter_rules())


@pytest.mark.parametrize("path", _route_paths())
def test_options_is_a_json_405_as_documented(api_server, path):
    r = api_server.request("OPTIONS", path)
    assert (r.status_code, r.headers.get("Allow")) == (405, "GET, HEAD"), path
    assert assert_json_error(405, r.headers, r.content, path)["error"] == (
        "method OPTIONS not allowed here; allowed: GET, HEAD")


def test_options_star_is_json(api_server):
    answer = raw_request(api_server.url, request_bytes("OPTIONS", "*", "127.0.0.1"))
    assert answer is not None
    assert_json_error(answer.status, answer.headers, answer.body, "OPTIONS *")
    assert answer.status in (400, 404, 405)


# Requests that reach the app (gunicorn accepts them); each answer must be ours.
ODD_REQUESTS = [
    ("GET", "/api/v1"), ("GET", "//x"), ("GET", "//api/v1/usage"), ("GET", "/%2e%2e/etc/passwd"),
    ("GET", "/static/../app.py"), ("GET", "/static/%2e%2e/app.py"), ("GET", "/static/"),
    ("GET", "/api/v1/clients/%00/history"), ("GET", "/api/v1/clients/%ff%fe/history"),
    ("GET", "/%ff"), ("GET", "/api/v1/usage?period=%ff"), ("GET", "/api.php?action=%00"),
    ("GET", "http://127.0.0.1/api/v1/"), ("GET", "http://evil.example/api/v1/"),
    ("OPTIONS", "/"), ("OPTIONS", "/api/v1/usage"), ("TRACE", "/api/v1/usage"),
    ("PATCH", "/healthz"), ("PROPFIND", "/"), ("POST", "/api.php?action=wan"),
    ("BREW", "/api/v1/"), ("DELETE", "/nothing"), ("PUT", "/static/dashboard.js"),
]


@pytest.mark.parametrize("method, target", ODD_REQUESTS)
def test_every_answer_the_app_gives_is_json_with_the_security_headers(api_server, method, target):
    host = urlsplit(api_server.url).netloc
    answer = raw_request(api_server.url, request_bytes(method, target, host))
    assert answer is not None, (method, target)
    assert not 300 <= answer.status < 400 or answer.status == 304, (method, target, answer)
    if answer.status >= 400:
        assert_json_error(answer.status, answer.headers, answer.body, f"{method} {target}",
                          seed=target.startswith("/api.php"))
    else:
        assert answer.headers["content-type"] == "application/json", (method, target)
        assert_security_headers(answer.headers, f"{method} {target}")
