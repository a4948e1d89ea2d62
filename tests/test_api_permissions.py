"""The API as another OS user than the collector, with the seed's group permissions.

The seed's README: the collector's user owns /var/www/netstat-data and its files,
the web server's user is in the owner's group, the directory is 775 and the
files 664. Here: `nsc-owner` (primary group `nsc-data`) runs the real collector,
and `nsc-api` (own group `nsc-api`) runs gunicorn with `nsc-data` as its group, as
deploy/gunicorn.service does with User= and Group=. Both run as real processes
started with setpriv.

Needs root (to create the accounts and switch to them; CI runs as root). When the
test's Python lies under a directory other users may not enter (pyenv under
/root), each process gets a private mount namespace in which that directory is
replaced by one that shows only the Python installation (same paths, nothing
copied).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import (
    REPO,
    T0,
    answers_during,
    as_user,
    file_hashes,
    gunicorn_server,
    stored_usage,
    truth_of,
)

from collector.sim.routers import Fleet

OWNER = "nsc-owner"
API_USER = "nsc-api"
DATA_GROUP = "nsc-data"
TOOLS = ("setpriv", "useradd", "groupadd", "unshare", "mount", "ps")
LAPTOP = "aa:00:00:00:00:01"
PHONE = "aa:00:00:00:00:02"


def _missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create the test accounts and switch to them (CI runs as root)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (util-linux, passwd) to run processes as other users"
    return None


# Other OS users, mount namespaces and a minute of load: the long tier.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(_missing_requirement() is not None, reason=_missing_requirement() or "")]


def _ensure_accounts() -> None:
    """Create the group and the two users unless they exist (the test may run again)."""
    def exists(db, name) -> bool:
        try:
            db(name)
            return True
        except KeyError:
            return False

    if not exists(grp.getgrnam, DATA_GROUP):
        subprocess.run(["groupadd", "--system", DATA_GROUP], check=True)
    common = ["--system", "--no-create-home", "--home-dir", "/nonexistent",
              "--shell", "/usr/sbin/nologin"]
    if not exists(pwd.getpwnam, OWNER):
        subprocess.run(["useradd", *common, "--gid", DATA_GROUP, OWNER], check=True)
    if not exists(pwd.getpwnam, API_USER):
        subprocess.run(["useradd", *common, "--user-group", API_USER], check=True)


@dataclass
class Site:
    base: Path
    data_dir: Path
    config: Path
    fleet: Fleet
    owner: list[str]  # command prefix: this Python as the collector's user
    api: list[str]  # as the API's user, with the data group

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
        env.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1", TZ="UTC",
                   NETSTAT_NOW=repr(self.fleet.now))
        return env

    def collect(self) -> subprocess.CompletedProcess:
        """One real `run-once` as the owner, at the fleet's virtual time."""
        return subprocess.run(
            [*self.owner, "-m", "collector", "run-once", "--config", str(self.config),
             "--data-dir", str(self.data_dir)],
            capture_output=True, text=True, env=self.env(), cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def site():
    """The seed's layout in a fresh directory under /tmp, written by the collector as its owner."""
    _ensure_accounts()
    base = Path(tempfile.mkdtemp(prefix="netstat-perm-", dir="/tmp"))
    base.chmod(0o755)
    try:
        data_dir = base / "data"
        data_dir.mkdir()
        shutil.chown(data_dir, OWNER, DATA_GROUP)
        data_dir.chmod(0o775)
        with Fleet(now=T0) as fleet:
            fleet.add_router("router-1")
            fleet.join("router-1", LAPTOP, hostname="laptop")
            fleet.join("router-1", PHONE, hostname="phone")
            config = fleet.write_config(base / "routers.json", settings={"timezone": "UTC"})
            config.chmod(0o644)
            site = Site(base, data_dir, config, fleet, as_user(OWNER, DATA_GROUP, base / "stage"),
                        as_user(API_USER, DATA_GROUP, base / "stage"))
            probe = subprocess.run([*site.api, "-c", "import flask, gunicorn, api.app"],
                                   capture_output=True, text=True, env=site.env(), cwd=REPO)
            if probe.returncode != 0:
                pytest.skip(f"{API_USER} cannot run this Python: {probe.stderr.strip()}")
            first = site.collect()
            assert first.returncode == 0, first.stderr
            fleet.transfer("router-1", LAPTOP, 100_000, 2_000_000, wan_router="router-1")
            fleet.transfer("router-1", PHONE, 30_000, 400_000, wan_router="router-1")
            fleet.advance(1800)
            second = site.collect()
            assert second.returncode == 0, second.stderr
            yield site
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _stored_wan_rx(data_dir: Path) -> int:
    """main_wan's rx this period, read as root the way any WAL reader does (WAL included)."""
    conn = sqlite3.connect(f"file:{data_dir / 'network_stats.db'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT rx_bytes FROM monthly_stats WHERE id = 'main_wan'").fetchone()[0]
    finally:
        conn.close()


def test_the_collector_writes_group_writable_files_as_its_owner(site):
    modes = {p.name: (stat.S_IMODE(p.stat().st_mode), p.owner(), p.group())
             for p in site.data_dir.iterdir() if p.suffix == ".db"}
    assert modes == {
        "network_stats.db": (0o664, OWNER, DATA_GROUP),
        "dhcp_leases.db": (0o664, OWNER, DATA_GROUP),
    }


def test_the_api_as_another_user_serves_the_owners_data(site):
    with gunicorn_server(site.data_dir, site.base / "api.log", now=site.fleet.now,
                         command_prefix=site.api) as server:
        workers = subprocess.run(["ps", "-o", "user=", "--ppid", str(server.process.pid)],
                                 capture_output=True, text=True).stdout.split()
        usage = server.get("/api/v1/usage")
        health = server.get("/healthz")
        combined = server.get("/api.php", params={"action": "combined"})
    assert set(workers) == {API_USER}
    truth = truth_of(site.fleet)
    assert usage.status_code == 200, usage.text
    assert [usage.json()["wan"]["rx_bytes"], usage.json()["wan"]["tx_bytes"]] == list(truth["main_wan"])
    assert {c["mac"]: [c["rx_bytes"], c["tx_bytes"]] for c in usage.json()["clients"]} == {
        LAPTOP: list(truth[LAPTOP]), PHONE: list(truth[PHONE])}
    assert (health.status_code, combined.status_code) == (200, 200)


def test_the_wal_index_the_api_creates_stays_usable_by_the_owner(site):
    """SQLite gives -shm the database's mode; Group= gives it the data group."""
    for name in ("network_stats.db-shm", "network_stats.db-wal"):
        (site.data_dir / name).unlink(missing_ok=True)  # as right after a collector run
    with gunicorn_server(site.data_dir, site.base / "api-shm.log", now=site.fleet.now,
                         command_prefix=site.api) as server:
        assert server.get("/api/v1/usage").status_code == 200
        shm = site.data_dir / "network_stats.db-shm"
        assert (stat.S_IMODE(shm.stat().st_mode), shm.owner(), shm.group()) == (
            0o664, API_USER, DATA_GROUP)


def test_the_collector_commits_while_another_user_serves(site):
    with gunicorn_server(site.data_dir, site.base / "api-live.log", now=site.fleet.now,
                         command_prefix=site.api) as server:
        before = server.get("/api/v1/usage")
        old_rx = before.json()["wan"]["rx_bytes"]
        site.fleet.transfer("router-1", LAPTOP, 50_000, 700_000, wan_router="router-1")
        site.fleet.advance(1800)
        run, seen = answers_during(server, "/api/v1/usage", site.collect)
        after = server.get("/api/v1/usage", headers={"If-None-Match": before.headers["ETag"]})
    assert run.returncode == 0, run.stderr
    assert seen and [answer for answer in seen if answer[0] != 200] == []
    assert {body["wan"]["rx_bytes"] for _, body in seen} <= {old_rx, old_rx + 700_000}
    assert (after.status_code, after.json()["wan"]["rx_bytes"]) == (200, old_rx + 700_000)
    assert _stored_wan_rx(site.data_dir) == old_rx + 700_000


# systemd's PrivateUsers=yes, as v252 sets it up: the groups are set first (the unit's Group=
# and the user's supplementary groups), then a user namespace is made in which only root,
# the unit's user and its group are mapped (a child still outside writes the maps), then
# the user is set and the program runs. Everyone else shows as nobody inside.
PRIVATE_USERS = """
import ctypes, os, pwd, sys
user, group, program = sys.argv[1], int(sys.argv[2]), sys.argv[4:]
uid = pwd.getpwnam(user).pw_uid
os.initgroups(user, group)
os.setresgid(group, group, group)
ready, go = os.pipe(), os.pipe()
child = os.fork()
if child == 0:
    os.read(ready[0], 1)
    parent = os.getppid()
    with open(f"/proc/{parent}/uid_map", "w") as f:
        f.write(f"0 0 1\\n{uid} {uid} 1\\n")
    with open(f"/proc/{parent}/gid_map", "w") as f:
        f.write(f"0 0 1\\n{group} {group} 1\\n")
    os.write(go[1], b"x")
    os._exit(0)
if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:  # CLONE_NEWUSER
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
os.write(ready[1], b"x")
os.read(go[0], 1)
os.waitpid(child, 0)
os.setresuid(uid, uid, uid)
os.execv(program[0], program)
"""


def _in_private_users(prefix: list[str], user: str, group: str) -> list[str]:
    """`prefix` (from as_user) with setpriv replaced by the PrivateUsers=yes set-up above."""
    at = prefix.index("setpriv")
    end = prefix.index("--", at)
    return [*prefix[:at], sys.executable, "-c", PRIVATE_USERS, user, str(grp.getgrnam(group).gr_gid),
            "--", *prefix[end + 1:]]


def test_the_api_in_a_private_user_namespace_shares_the_data(site):
    """deploy/gunicorn.service has PrivateUsers=yes: the data group must still read the
    collector's files, create the -shm index with the data group, and the collector must
    keep committing with it."""
    data_dir = _copy_of_the_data(site, "data-private-users")
    data_dir.chmod(0o2775)  # as the README installs it
    api = _in_private_users(site.api, API_USER, DATA_GROUP)
    env = site.env()
    with gunicorn_server(data_dir, site.base / "api-userns.log", now=site.fleet.now,
                         command_prefix=api) as server:
        worker = subprocess.run(["ps", "-o", "pid=", "--ppid", str(server.process.pid)],
                                capture_output=True, text=True).stdout.split()[0]
        uid_map = Path(f"/proc/{worker}/uid_map").read_text().split()
        owner_inside = subprocess.run(
            [*api, "-c", f"import os; print(os.stat({str(data_dir / 'network_stats.db')!r}).st_uid)"],
            capture_output=True, text=True, env=env, cwd=REPO)
        usage = server.get("/api/v1/usage")
        runs_before = _runs(data_dir)
        # The owner's collector commits beside the -shm the API created (the shared fleet
        # is left as it is: no time passes, nothing is moved).
        run = subprocess.run(
            [*site.owner, "-m", "collector", "run-once", "--config", str(site.config),
             "--data-dir", str(data_dir)], capture_output=True, text=True, env=env, cwd=REPO,
            timeout=120)
        after = server.get("/api/v1/usage")
    api_uid = str(pwd.getpwnam(API_USER).pw_uid)
    assert uid_map == ["0", "0", "1", api_uid, api_uid, "1"]  # really in such a namespace
    assert owner_inside.stdout.strip() == "65534", owner_inside.stderr  # the collector is nobody there
    assert usage.status_code == 200, usage.text
    shm = data_dir / "network_stats.db-shm"
    assert (stat.S_IMODE(shm.stat().st_mode), shm.owner(), shm.group()) == (0o664, API_USER, DATA_GROUP)
    assert run.returncode == 0, run.stderr
    assert _runs(data_dir) == runs_before + 1
    # The API saw the owner's commit: its WAN is what the database now holds for the period
    # (the copy's baselines may lag the shared fleet, so the run may have counted traffic).
    assert after.status_code == 200, after.text
    period = after.json()["period"]["label"]
    assert [after.json()["wan"][k] for k in ("rx_bytes", "tx_bytes")] == list(
        stored_usage(data_dir, period)["main_wan"])


def _runs(data_dir: Path) -> int:
    conn = sqlite3.connect(f"file:{data_dir / 'network_stats.db'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        conn.close()


def _copy_of_the_data(site: Site, name: str) -> Path:
    """The owner's databases copied into a new directory laid out as the seed's (775, 664)."""
    data_dir = site.base / name
    data_dir.mkdir()
    for db in ("network_stats.db", "dhcp_leases.db"):
        shutil.copyfile(site.data_dir / db, data_dir / db)
        shutil.chown(data_dir / db, OWNER, DATA_GROUP)
        (data_dir / db).chmod(0o664)
    shutil.chown(data_dir, OWNER, DATA_GROUP)
    data_dir.chmod(0o775)
    return data_dir


def test_without_the_data_group_the_api_answers_503_naming_the_problem(site):
    """No write access to the directory: the reader cannot create the WAL index."""
    data_dir = _copy_of_the_data(site, "data-no-group")
    own_group = as_user(API_USER, API_USER, site.base / "stage")
    with gunicorn_server(data_dir, site.base / "api-no-group.log", now=site.fleet.now,
                         command_prefix=own_group) as server:
        r = server.get("/api/v1/usage")
    assert (r.status_code, r.json()["status"]) == (503, 503)
    error = r.json()["error"]
    # SQLite's own words vary by version; the file and the cause must be named.
    assert error.startswith(f"{data_dir / 'network_stats.db'}: cannot read database: ")
    assert error.endswith(
        f"(network_stats.db-shm is missing and this user may not create it: the reader needs "
        f"write access to {data_dir}, e.g. through the data group)")


def test_an_unreadable_database_answers_503_naming_the_problem(site):
    data_dir = _copy_of_the_data(site, "data-unreadable")
    (data_dir / "network_stats.db").chmod(0o600)
    with gunicorn_server(data_dir, site.base / "api-unreadable.log", now=site.fleet.now,
                         command_prefix=site.api) as server:
        r = server.get("/api/v1/usage")
    assert r.status_code == 503
    assert r.json()["error"] == (
        f"{data_dir / 'network_stats.db'}: cannot read database: unable to open database file "
        f"(this user may not read it: the reader needs read access, e.g. mode 0664 and the data group)")


SOAK_SECONDS = float(os.environ.get("NETSTAT_SOAK_SECONDS", "60"))
SOAK_RATE = 50  # requests per second


def _db_hashes(data_dir: Path) -> dict[str, str]:
    return {name: digest for name, digest in file_hashes(data_dir).items() if name.endswith(".db")}


def test_steady_load_while_the_collector_commits_again_and_again(site):
    """Issue 7, reader and writer together: ~50 requests/s for a minute, served by another
    user, while the owner's collector commits every few seconds. No 5xx, no "database is
    locked", and the first request after each commit shows the new totals. Then, with the
    collector stopped, a load run leaves the database files byte-identical."""
    import threading

    import requests

    answers: list[tuple[int, str]] = []
    stop = threading.Event()
    with gunicorn_server(site.data_dir, site.base / "api-soak.log", now=site.fleet.now,
                         command_prefix=site.api) as server:

        def load() -> None:
            session = requests.Session()
            session.trust_env = False
            started = time.monotonic()
            n = 0
            while not stop.is_set():
                r = session.get(server.url + "/api/v1/usage", timeout=10)
                answers.append((r.status_code, r.text if r.status_code != 200 else ""))
                n += 1
                pause = started + n / SOAK_RATE - time.monotonic()  # paced, not flat out
                if pause > 0:
                    time.sleep(pause)
            session.close()

        threading.Thread(target=load, daemon=True).start()
        commits = 0
        stale = []
        deadline = time.monotonic() + SOAK_SECONDS
        try:
            while time.monotonic() < deadline:
                site.fleet.advance(60)
                site.fleet.transfer("router-1", LAPTOP, 1_000, 123_456, wan_router="router-1")
                run = site.collect()
                assert run.returncode == 0, run.stderr
                commits += 1
                first = server.get("/api/v1/usage").json()["wan"]["rx_bytes"]
                if first != _stored_wan_rx(site.data_dir):
                    stale.append((commits, first))
                time.sleep(1.0)
        finally:
            stop.set()
            time.sleep(0.5)
        # The collector is done: reading must not change a byte.
        before = _db_hashes(site.data_dir)
        for _ in range(200):
            assert server.get("/api/v1/usage").status_code == 200
            assert server.get("/api.php", params={"action": "combined"}).status_code == 200
        after = _db_hashes(site.data_dir)
        log = server.log.read_text(errors="replace")
    failures = [a for a in answers if a[0] != 200]
    assert failures == [], failures[:5]
    assert "locked" not in log.lower()
    assert stale == []
    assert len(answers) >= SOAK_SECONDS * SOAK_RATE * 0.6, len(answers)
    assert commits >= SOAK_SECONDS / 10, commits
    assert after == before
    print(f"\nsoak: {len(answers)} requests over {SOAK_SECONDS:.0f}s during {commits} commits, "
          f"{len(failures)} failures; 400 more requests with the collector stopped changed no byte")
