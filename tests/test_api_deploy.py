"""deploy/gunicorn.service and deploy/nginx.conf, checked with the real tools.

systemd-analyze verifies the unit in a scratch root (so the ExecStart binary it
insists on can exist there); nginx runs the real server block on 127.0.0.1 in
front of the test gunicorn.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import REPO

# Real nginx and systemd-analyze: the long tier.
pytestmark = pytest.mark.slow

UNIT = REPO / "deploy" / "gunicorn.service"
NGINX_CONF = REPO / "deploy" / "nginx.conf"
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


def test_the_unit_is_hardened(tmp_path):
    analyze = _systemd_analyze()
    proc = subprocess.run([analyze, "security", "--offline=yes", f"--root={_unit_root(tmp_path)}",
                           "netstat-api.service"], capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for netstat-api.service: ([0-9.]+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    # 0 is a fully locked-down service, 10 an unprotected one; ours measured 1.3.
    assert float(found.group(1)) <= 2.0, proc.stdout


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


@pytest.fixture
def nginx(api_server, tmp_path):
    """The real nginx, with deploy/nginx.conf's server block, in front of the test gunicorn.

    Only the addresses change: it listens on a free loopback port, proxies to the
    test gunicorn, and gets a document root holding database files, to show they
    are refused even where the root would expose them.
    """
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.skip("nginx is not installed here (apt-get install nginx-light); "
                    "deploy/nginx.conf was not exercised")
    docroot = tmp_path / "www"
    docroot.mkdir()
    (docroot / "network_stats.db").write_bytes(b"SQLite format 3\x00 secret")
    (docroot / "network_stats.db-wal").write_bytes(b"secret")
    (docroot / ".netstat-collect.lock").write_bytes(b"")
    upstream = api_server.url.removeprefix("http://")
    for _attempt in range(3):
        port = _free_port()
        server_block = NGINX_CONF.read_text()
        server_block = server_block.replace("server 127.0.0.1:8081;", f"server {upstream};")
        server_block = server_block.replace("    listen [::]:80;\n", "")
        server_block = server_block.replace("listen 80;", f"listen 127.0.0.1:{port};\n"
                                                          f"    root {docroot};")
        assert f"listen 127.0.0.1:{port};" in server_block and upstream in server_block
        (tmp_path / "netstat-api.conf").write_text(server_block)
        (tmp_path / "nginx.conf").write_text(f"""
daemon off;
master_process off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    include {tmp_path}/netstat-api.conf;
}}
""")
        check = subprocess.run([binary, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        process = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        session = requests.Session()
        session.trust_env = False
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            try:
                session.get(base + "/healthz", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        if process.poll() is None:
            try:
                yield base, session
            finally:
                session.close()
                process.terminate()
                process.wait(timeout=15)
            return
        # The port was taken between choosing and binding it: try another.
    pytest.fail(f"nginx did not start: {(tmp_path / 'error.log').read_text(errors='replace')}")


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
