"""deploy/gunicorn.service and deploy/nginx.conf, checked with the real tools.

systemd-analyze verifies the unit in a scratch root (so the ExecStart binary it
insists on can exist there); nginx runs the real server block on 127.0.0.1 in
front of the test gunicorn.
"""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from support import REPO, gunicorn_server
from test_api_hardening import assert_json_error, assert_security_headers, raw_request

# Real nginx and systemd-analyze: the long tier.
pytestmark = pytest.mark.slow

UNIT = REPO / "deploy" / "gunicorn.service"
NGINX_CONF = REPO / "deploy" / "nginx.conf"
RELIABILITY = REPO / "docs" / "reliability.md"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def _unit_root(tmp_path: Path) -> Path:
    """A scratch root with systemd's own units, the venv's gunicorn (a stub) and our unit."""
    root = tmp_path / "root"
    gunicorn = root / "opt/netstat-collect/venv/bin/gunicorn"
    gunicorn.parent.mkdir(parents=True)
    gunicorn.write_text("#!/bin/sh\n")
    gunicorn.chmod(0o755)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copyfile(UNIT, root / "etc/systemd/system/netstat-api.service")
    return root


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None or not SYSTEM_UNITS.is_dir():
        pytest.skip("systemd-analyze is not installed here (Debian package systemd); "
                    "the unit was not verified")
    return path


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = _systemd_analyze()
    proc = subprocess.run([analyze, "verify", f"--root={_unit_root(tmp_path)}",
                           "netstat-api.service"], capture_output=True, text=True, timeout=60)
    # Unknown or misspelt keys are only warnings: none may be printed.
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def _documented_sandbox() -> tuple[float, set[str]]:
    """docs/reliability.md, "The service's sandbox": the score reached, and what stays open."""
    text = RELIABILITY.read_text()
    section = text.split("\n## The service's sandbox\n", 1)[1].split("\n## ", 1)[0]
    score = float(re.search(r'to ([0-9.]+) "[A-Z]+"\*\*', section).group(1))
    open_items = {name.replace("\\|", "|") for name in re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)}
    return score, open_items


def test_the_unit_is_hardened(tmp_path):
    """Exactly what docs/reliability.md says stays open is open, and the score is no worse."""
    analyze = _systemd_analyze()
    proc = subprocess.run([analyze, "security", "--offline=yes", f"--root={_unit_root(tmp_path)}",
                           "netstat-api.service"], capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for netstat-api.service: ([0-9.]+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    flagged = set(re.findall(r"^✗ (\S+)", proc.stdout, re.MULTILINE))
    score, documented = _documented_sandbox()
    # (flagged but not documented, documented but no longer flagged)
    assert (sorted(flagged - documented), sorted(documented - flagged)) == ([], []), proc.stdout
    # 0 is a fully locked-down service, 10 an unprotected one.
    assert float(found.group(1)) <= score, proc.stdout


def test_the_unit_runs_the_api_as_a_non_root_user_in_the_data_group():
    settings = dict(re.findall(r"^(\w+)=(.*)$", UNIT.read_text(), re.MULTILINE))
    assert (settings["User"], settings["Group"], settings["UMask"]) == ("netstat-api", "netstat", "0002")
    assert settings["ReadWritePaths"] == "/var/www/netstat-data"
    assert "NETSTAT_DATA_DIR=/var/www/netstat-data" in UNIT.read_text()
    assert "--bind 127.0.0.1:8081" in UNIT.read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nginx_binary() -> str:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.skip("nginx is not installed here (apt-get install nginx-light); "
                    "deploy/nginx.conf was not exercised")
    return binary


@contextmanager
def nginx_in_front(upstream: str, base: Path, docroot: Path | None = None):
    """The real nginx, with deploy/nginx.conf as it is, in front of `upstream` (host:port).

    Only the addresses change: every server listens on one free loopback port instead
    of port 80 (no IPv6), and the upstream is the given one. `docroot`, when given,
    becomes the document root, to show that files there are refused all the same.
    Yields (base URL, session).
    """
    binary = _nginx_binary()
    base.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):
        port = _free_port()
        conf = NGINX_CONF.read_text().replace("server 127.0.0.1:8081;", f"server {upstream};")
        conf = re.sub(r"\n *listen \[::\]:80\b[^;]*;", "", conf)
        root = f"\n    root {docroot};" if docroot else ""
        conf, listens = re.subn(r"listen 80\b([^;]*);", rf"listen 127.0.0.1:{port}\1;{root}", conf)
        assert listens >= 1 and f"server {upstream};" in conf and "listen [::]" not in conf
        (base / "netstat-api.conf").write_text(conf)
        (base / "nginx.conf").write_text(f"""
daemon off;
master_process off;
pid {base}/nginx.pid;
error_log {base}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    include {base}/netstat-api.conf;
}}
""")
        check = subprocess.run([binary, "-t", "-p", str(base), "-c", str(base / "nginx.conf")],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        process = subprocess.Popen([binary, "-p", str(base), "-c", str(base / "nginx.conf")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        session = requests.Session()
        session.trust_env = False
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            try:
                session.get(url + "/healthz", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        if process.poll() is None:
            try:
                yield url, session
            finally:
                session.close()
                process.terminate()
                process.wait(timeout=15)
            return
        # The port was taken between choosing and binding it: try another.
    pytest.fail(f"nginx did not start: {(base / 'error.log').read_text(errors='replace')}")


@pytest.fixture
def nginx(api_server, tmp_path):
    """nginx in front of the test gunicorn, with a document root holding database files."""
    docroot = tmp_path / "www"
    docroot.mkdir()
    (docroot / "network_stats.db").write_bytes(b"SQLite format 3\x00 secret")
    (docroot / "network_stats.db-wal").write_bytes(b"secret")
    (docroot / ".netstat-collect.lock").write_bytes(b"")
    with nginx_in_front(api_server.url.removeprefix("http://"), tmp_path / "nginx", docroot) as front:
        yield front


@pytest.mark.parametrize("path", ["/api/v1/usage?period=2026-11", "/api.php?action=combined",
                                  "/healthz", "/", "/api/v1/periods"])
def test_nginx_proxies_the_api_unchanged(nginx, api_server, path):
    base, session = nginx
    through = session.get(base + path, timeout=30)
    direct = api_server.get(path)
    assert (through.status_code, through.content) == (direct.status_code, direct.content)


def test_nginx_serves_api_php_where_the_seed_installed_it(nginx, api_server):
    base, session = nginx
    through = session.get(base + "/netstat/api.php?action=wan", timeout=30)
    assert (through.status_code, through.json()) == (200, api_server.get("/api.php?action=wan").json())


def test_nginx_passes_conditional_requests(nginx):
    base, session = nginx
    first = session.get(base + "/api/v1/leases", timeout=30)
    again = session.get(base + "/api/v1/leases", headers={"If-None-Match": first.headers["ETag"]},
                        timeout=30)
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["/network_stats.db", "/network_stats.db-wal", "/NETWORK_STATS.DB",
                                  "/.netstat-collect.lock"])
def test_nginx_never_serves_the_databases(nginx, path):
    base, session = nginx
    r = session.get(base + path, timeout=30)
    assert r.status_code == 403
    assert b"secret" not in r.content


# --- What reaches a client through nginx: JSON with our headers, or nothing at all ----------


def unit_gunicorn_limits() -> list[str]:
    """The --limit-request-* options of the unit's ExecStart, as gunicorn takes them."""
    text = UNIT.read_text().replace("\\\n", " ")
    command = shlex.split(re.search(r"^ExecStart=(.*)$", text, re.MULTILINE).group(1))
    options = []
    for i, word in enumerate(command):
        if word.startswith("--limit-request"):
            options += [word] if "=" in word else [word, command[i + 1]]
    return options


@pytest.fixture(scope="module")
def unit_nginx(api_scenario, tmp_path_factory):
    """nginx as deployed, in front of a gunicorn with the unit's request limits."""
    base = tmp_path_factory.mktemp("unit-nginx")
    limits = {"GUNICORN_CMD_ARGS": shlex.join(unit_gunicorn_limits())}
    with gunicorn_server(api_scenario.data_dir, base / "gunicorn.log", now=api_scenario.now,
                         env=limits) as server:
        with nginx_in_front(server.url.removeprefix("http://"), base / "nginx") as (url, session):
            yield url, session, server


def _request(method: str, target: str, *headers: str, host: str = "127.0.0.1",
             version: str = "HTTP/1.1", body: bytes = b"") -> bytes:
    lines = [f"{method} {target} {version}", f"Host: {host}", *headers, "Connection: close"]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def _many(count: int) -> list[str]:
    return [f"X-Field-{i}: {i}" for i in range(count)]


# Requests a client can send through nginx, each with our Host. nginx must refuse the ones
# gunicorn would (with its own HTML page): its limits are tighter, or it checks first.
HOSTILE = {
    **{f"request line of {n} bytes": _request("GET", "/api/v1/usage?x=" + "a" * n)
       for n in (1000, 4000, 4060, 4100, 5000, 8100, 8200, 9000, 20000, 100_000)},
    **{f"a header field of {n} bytes": _request("GET", "/api/v1/usage", "X-Long: " + "a" * n)
       for n in (1000, 4000, 4100, 5000, 8100, 8200, 9000, 20000)},
    **{f"If-None-Match of {n} bytes": _request("GET", "/api/v1/usage", 'If-None-Match: "' + "a" * n + '"')
       for n in (4000, 4100, 8200)},
    **{f"{n} header fields": _request("GET", "/api/v1/usage", *_many(n))
       for n in (50, 99, 100, 101, 200, 1000, 3000)},
    "1000 header fields of 4000 bytes": _request("GET", "/", *[f"X-{i}: " + "b" * 4000 for i in range(1000)]),
    "a raw non-ASCII byte in the target": _request("GET", "/api/v1/usage?x=\xc3\xa9"),
    "a raw 0xff in the path": _request("GET", "/\xff"),
    "a control byte in the target": _request("GET", "/api/v1/\x01"),
    "DEL in the target": _request("GET", "/api/v1/\x7f"),
    "a control byte in User-Agent": _request("GET", "/api/v1/usage", "User-Agent: a\x01b"),
    "a control byte in If-None-Match": _request("GET", "/api/v1/usage", 'If-None-Match: "a\x1bb"'),
    "DEL in Referer": _request("GET", "/", "Referer: http://x/\x7f"),
    "a control byte in another header": _request("GET", "/api/v1/usage", "X-Thing: a\x02b"),
    "a non-ASCII User-Agent": _request("GET", "/api/v1/usage", "User-Agent: caf\xe9"),
    "X-Forwarded-Ssl: on": _request("GET", "/api/v1/usage", "X-Forwarded-Ssl: on"),
    "X-Forwarded-Proto: https": _request("GET", "/api/v1/usage", "X-Forwarded-Proto: https"),
    "X-Forwarded-Protocol: ssl": _request("GET", "/api/v1/usage", "X-Forwarded-Protocol: ssl"),
    "X-Forwarded-For garbage": _request("GET", "/api/v1/usage", "X-Forwarded-For: \x01, ::"),
    "a header name with an underscore": _request("GET", "/api/v1/usage", "X_Forwarded_Proto: https"),
    "method AB": _request("AB", "/api/v1/usage"),
    "method A": _request("A", "/api/v1/usage"),
    "a 25-letter method": _request("ABCDEFGHIJKLMNOPQRSTUVWXY", "/api/v1/usage"),
    "method GE_T": _request("GE_T", "/api/v1/usage"),
    "lowercase get": _request("get", "/api/v1/usage"),
    "OPTIONS": _request("OPTIONS", "/api/v1/usage"),
    "OPTIONS *": _request("OPTIONS", "*"),
    "DELETE": _request("DELETE", "/api/v1/usage"),
    "PROPFIND": _request("PROPFIND", "/"),
    "CONNECT": _request("CONNECT", "127.0.0.1:80"),
    "TRACE": _request("TRACE", "/"),
    "POST with a body": _request("POST", "/api.php?action=wan", "Content-Length: 5", body=b"hello"),
    "POST with a 2 MB body": _request("POST", "/api/v1/usage", "Content-Length: 2000000",
                                      body=b"x" * 2_000_000),
    "GET with a body": _request("GET", "/api/v1/usage", "Content-Length: 5", body=b"hello"),
    "GET chunked": _request("GET", "/api/v1/usage", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "Transfer-Encoding: gzip": _request("GET", "/api/v1/usage", "Transfer-Encoding: gzip"),
    "Content-Length: abc": _request("GET", "/api/v1/usage", "Content-Length: abc"),
    "two Content-Lengths": _request("GET", "/", "Content-Length: 0", "Content-Length: 1"),
    "Expect: 100-continue": _request("GET", "/api/v1/usage", "Expect: 100-continue"),
    "HTTP/2.0 in the request line": _request("GET", "/api/v1/usage", version="HTTP/2.0"),
    "HTTP/1.2": _request("GET", "/api/v1/usage", version="HTTP/1.2"),
    "HTTP/0.1": _request("GET", "/api/v1/usage", version="HTTP/0.1"),
    "a header line without a colon": _request("GET", "/api/v1/usage", "NoColonHere"),
    "a header name with a space": _request("GET", "/api/v1/usage", "Bad Name: x"),
    "obsolete line folding": _request("GET", "/api/v1/usage", "User-Agent: a", " folded"),
    "absolute-form": _request("GET", "http://127.0.0.1/api/v1/usage"),
    "a bare LF request": b"GET /api/v1/usage HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n",
    "garbage": b"HELLO THERE\r\n\r\n",
    "a NUL in the request line": b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    "If-Match nope": _request("GET", "/api/v1/usage", 'If-Match: "nope"'),
    "unknown path": _request("GET", "/nothing/here"),
    "the databases": _request("GET", "/network_stats.db"),
    "a dotfile": _request("GET", "/.netstat-collect.lock"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_through_nginx_every_answer_is_json_with_the_security_headers(unit_nginx, case):
    url, _, _ = unit_nginx
    answer = raw_request(url, HOSTILE[case])
    assert answer is not None, case
    if answer.status >= 400:
        assert_json_error(answer.status, answer.headers, answer.body, case,
                          seed=b" /api.php" in HOSTILE[case][:40])
    else:
        assert answer.headers.get("content-type") == "application/json", (case, answer)
        assert_security_headers(answer.headers, case)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io",
                                  "localhost.evil.example", "0x7f000001", "LOCALHOST.evil.example"])
def test_nginx_drops_requests_for_other_names(unit_nginx, host):
    """The default server closes the connection without an answer: a rebinding page reads nothing."""
    url, _, _ = unit_nginx
    assert raw_request(url, _request("GET", "/api/v1/usage", host=host)) is None
    assert raw_request(url, _request("GET", "/", host=host)) is None


def test_nginx_drops_requests_without_a_host(unit_nginx):
    url, _, _ = unit_nginx
    assert raw_request(url, b"GET /api/v1/usage HTTP/1.0\r\n\r\n") is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LocalHost:80", "192.168.1.10",
                                  "[::1]", "[fe80::1]:80", socket.gethostname()])
def test_nginx_serves_ip_literals_localhost_and_the_machines_name(unit_nginx, host):
    url, session, server = unit_nginx
    r = session.get(url + "/api/v1/usage", headers={"Host": host}, timeout=30)
    assert (r.status_code, r.content) == (200, server.get("/api/v1/usage").content), host


def test_nginx_answers_json_when_the_api_is_down(tmp_path):
    with nginx_in_front(f"127.0.0.1:{_free_port()}", tmp_path / "nginx") as (url, session):
        r = session.get(url + "/api/v1/usage", timeout=30)
    assert r.status_code == 502
    assert_json_error(502, r.headers, r.content, "API down")
