"""deploy/install.sh for real, as root: install, run as the service users, install again, uninstall.

Twice: into a scratch root (`--root`: every file under a temporary directory laid out like
a Debian board still running the old Go daemon: its unit enabled, its databases owned by
root in the data directory), and onto this machine's real paths. The users and the group
are this machine's either way. Each time:

- the collector runs as `netstat` with the installed cron file's own command line, against
  simulated routers on 127.0.0.1 (the configuration is the test's, never the example's);
- the API runs as `netstat-api` in group `netstat` under gunicorn, started by hand from the
  installed unit's ExecStart=, User=, Group=, UMask= and Environment= (no systemd runs as
  PID 1 here). Only the port (any free one), the scratch root's prefix and the test clock
  (NETSTAT_NOW) differ. It answers what `netstat-collect report` reads as `netstat`;
- systemd-analyze verifies the installed unit and nginx -t the installed site;
- a second install changes nothing; --uninstall leaves everything as it was except the data
  directory and the configuration (and the old daemon, which stays disabled).

Root only (CI runs as root). Skipped where the machine already has a `netstat` user or
group, or netstat-collect installed: the test would remove them.
"""

from __future__ import annotations

import fcntl
import grp
import hashlib
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support import REPO, T0, truth_of

from collector.sim.routers import Fleet

INSTALL = REPO / "deploy" / "install.sh"
USERS = ("netstat", "netstat-api")
GROUP = "netstat"
SYSTEM_PYTHON = Path("/usr/bin/python3")  # what the script builds the venv with by default
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
TOOLS = ("setpriv", "useradd", "userdel", "groupadd", "groupdel", "getent", "systemctl",
         "systemd-analyze", "ps")
# Everything the script writes on a real root (the parents are the machine's).
APP_DIR = "/opt/netstat-collect"
CONF = "/etc/netstat-collect/routers.json"
DATA_DIR = "/var/www/netstat-data"
LOG_DIR = "/var/log/netstat-collect"
CRON_FILE = "/etc/cron.d/netstat-collect"
UNIT_FILE = "/etc/systemd/system/netstat-api.service"
SITE = "/etc/nginx/sites-available/netstat-api"
SITE_LINK = "/etc/nginx/sites-enabled/netstat-api"
FOOTPRINT = (APP_DIR, "/etc/netstat-collect", DATA_DIR, LOG_DIR, CRON_FILE, UNIT_FILE, SITE, SITE_LINK,
             "/etc/systemd/system/multi-user.target.wants/netstat-api.service")
# Debian's welcome page: a second default server, which the script disables and --uninstall restores.
DEFAULT_SITE_LINK = "/etc/nginx/sites-enabled/default"
DEBIAN_DEFAULT_SITE = """server {
	listen 80 default_server;
	listen [::]:80 default_server;
	root /var/www/html;
	index index.html index.htm index.nginx-debian.html;
	server_name _;
	location / {
		try_files $uri $uri/ =404;
	}
}
"""
OLD_UNIT = "router-stats.service"
LAPTOP = "aa:00:00:00:00:01"
PHONE = "aa:00:00:00:00:02"
# The old daemon's totals for the current period (2026-11), kept by the upgrade.
GO_TOTALS = {"main_wan": (5_000_000, 700_000), LAPTOP: (300_000, 4_000_000)}
LOCK = Path(tempfile.gettempdir()) / "netstat-collect-install-test.lock"


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def _missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install for real (CI runs as root)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if _nginx() is None:
        missing.append("nginx")
    if missing or not SYSTEM_UNITS.is_dir():
        return f"needs {', '.join(missing) or SYSTEM_UNITS} (util-linux, passwd, systemd, nginx-light)"
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys, venv, ensurepip; "
                            "sys.exit(sys.version_info < (3, 10))"], capture_output=True)
    if probe.returncode != 0:
        return f"needs {SYSTEM_PYTHON} 3.10+ with venv (python3-venv), which install.sh builds on"
    taken = [name for name in USERS if _exists(pwd.getpwnam, name)]
    taken += [f"group {GROUP}"] if _exists(grp.getgrnam, GROUP) else []
    if taken:
        return (f"this machine has {', '.join(taken)}, which the test would remove "
                f"(a previous run's leftovers? sh deploy/install.sh --uninstall)")
    return None


def _exists(lookup, name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_missing_requirement() is not None, reason=_missing_requirement() or ""),
]


def accounts() -> list[str]:
    """Our users' and group's lines in passwd, group, shadow and gshadow (none before install)."""
    lines = []
    for database, names in (("passwd", USERS), ("shadow", USERS), ("group", (GROUP,)),
                            ("gshadow", (GROUP,))):
        found = subprocess.run(["getent", database, *names], capture_output=True, text=True)
        lines += [f"{database}: {line}" for line in found.stdout.splitlines()]
    return lines


def _name(lookup, number: int) -> str:
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def snapshot(*tops: Path) -> dict[str, tuple]:
    """path -> (kind, mode, owner, group, content hash or link target) of everything under tops."""
    entries: dict[str, tuple] = {}

    def record(path: Path) -> None:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            what = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            what = ("dir", "")
        else:
            what = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        entries[str(path)] = (what[0], oct(stat.S_IMODE(st.st_mode)), _name(pwd.getpwuid, st.st_uid),
                              _name(grp.getgrgid, st.st_gid), what[1])

    for top in tops:
        if not (top.exists() or top.is_symlink()):
            continue
        record(top)
        if top.is_dir() and not top.is_symlink():
            for dirpath, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    record(Path(dirpath) / name)
    return entries


def mode_owner(path: Path) -> tuple[str, str, str]:
    st = path.stat()
    return oct(stat.S_IMODE(st.st_mode)), _name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid)


def _seed_go_daemon(root: Path) -> None:
    """The old daemon's unit, enabled, and its two databases (seed schema) owned by root."""
    unit = root / "etc/systemd/system" / OLD_UNIT
    unit.write_text("[Unit]\nDescription=the old Go collector\n\n[Service]\n"
                    "ExecStart=/usr/local/bin/router-stats\n\n[Install]\nWantedBy=multi-user.target\n")
    subprocess.run(["systemctl", f"--root={root}", "enable", OLD_UNIT], check=True,
                   capture_output=True)
    data = root / DATA_DIR.lstrip("/")
    data.mkdir(mode=0o755)
    stats = sqlite3.connect(data / "network_stats.db")
    stats.executescript("""
        CREATE TABLE cumulative_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER);
        CREATE TABLE monthly_stats (id TEXT PRIMARY KEY, rx_bytes INTEGER, tx_bytes INTEGER, timestamp TEXT);
        INSERT INTO cumulative_stats VALUES ('main_wan', 999, 999);
    """)
    stats.executemany("INSERT INTO monthly_stats VALUES (?, ?, ?, '2026-11-15 11:30:00')",
                      [(device, rx, tx) for device, (rx, tx) in GO_TOTALS.items()])
    stats.commit()
    stats.close()
    leases = sqlite3.connect(data / "dhcp_leases.db")
    leases.execute("CREATE TABLE dhcp_leases (mac_address TEXT PRIMARY KEY, lease_end_time INTEGER, "
                   "ip_address TEXT, hostname TEXT, client_id TEXT, timestamp TEXT)")
    leases.commit()
    leases.close()
    for name in ("network_stats.db", "dhcp_leases.db"):
        (data / name).chmod(0o644)


def install_script(root: Path, *args: str) -> subprocess.CompletedProcess:
    """deploy/install.sh ARGS, under --root ROOT unless ROOT is /."""
    command = ["sh", str(INSTALL), *(["--root", str(root)] if root != Path("/") else []), *args]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NETSTAT_") and k not in ("PYTHON", "VIRTUAL_ENV")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


def run_script(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = install_script(root, *args)
    assert result.returncode == 0, f"install.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@dataclass
class Site:
    """One installation: where it lives, the simulated routers, what the script said."""

    root: Path  # Path("/") for the real paths
    work: Path  # logs and scratch files, reachable by the service users
    fleet: Fleet
    config_text: str  # the test's routers.json (simulated routers on 127.0.0.1)
    go_daemon: bool  # the root was laid out with the old daemon's unit and files
    before: dict[str, tuple]  # snapshot before the install
    accounts_before: list[str]
    installed: subprocess.CompletedProcess
    example_config: bytes | None  # what the install put at CONF when there was none

    @property
    def prefix(self) -> str:
        return str(self.root).rstrip("/")

    def path(self, absolute: str) -> Path:
        return Path(self.prefix + absolute)

    def footprint(self) -> dict[str, tuple]:
        """Everything under the scratch root; on the real root, every path the script writes."""
        if self.prefix:
            return snapshot(self.root)
        return snapshot(*(Path(p) for p in (*FOOTPRINT, DEFAULT_SITE_LINK)))


@pytest.fixture(scope="module")
def install_lock():
    """One install test at a time on this machine: they share the users."""
    with open(LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _lay_out_a_debian_root(root: Path) -> None:
    """The directories a Debian board with cron, systemd and nginx has, all 0755 root, and
    nginx's default site enabled as Debian's package leaves it (an absolute link)."""
    for directory in ("etc/cron.d", "etc/systemd/system", "etc/nginx/sites-available",
                      "etc/nginx/sites-enabled", "opt", "var/log", "var/www/html"):
        (root / directory).mkdir(parents=True)
    for dirpath, _, _ in os.walk(root):
        Path(dirpath).chmod(0o755)
    (root / "etc/nginx/sites-available/default").write_text(DEBIAN_DEFAULT_SITE)
    (root / DEFAULT_SITE_LINK.lstrip("/")).symlink_to("/etc/nginx/sites-available/default")


@pytest.fixture(scope="module", params=["scratch root", "real paths"])
def site(request, install_lock):
    real = request.param == "real paths"
    if real:
        present = [p for p in FOOTPRINT if os.path.lexists(p)]
        if present:
            pytest.skip(f"netstat-collect looks installed here ({', '.join(present)}); "
                        "the test would remove it")
    work = Path(tempfile.mkdtemp(prefix="netstat-install-", dir="/tmp"))
    work.chmod(0o755)  # the service users reach the scratch root through it
    root = Path("/") if real else work / "root"
    try:
        with Fleet(now=T0) as fleet:
            fleet.add_router("main")
            fleet.join("main", LAPTOP, hostname="laptop", ip="10.0.0.10")
            fleet.join("main", PHONE, hostname="phone", ip="10.0.0.11")
            config_text = json.dumps(fleet.config({"timezone": "UTC"}), indent=2)
            if real:
                # The test's configuration goes in first: the example (192.168.1.x) never
                # lands on a real machine, where a running cron would poll it.
                Path(CONF).parent.mkdir(mode=0o755)
                Path(CONF).write_text(config_text)
                Path(CONF).chmod(0o644)
            else:
                _lay_out_a_debian_root(root)
                _seed_go_daemon(root)
            before = snapshot(*(Path(p) for p in (*FOOTPRINT, DEFAULT_SITE_LINK))) if real else snapshot(root)
            accounts_before = accounts()
            installed = run_script(root)
            example = None
            if not real:
                conf = Path(str(root) + CONF)
                example = conf.read_bytes()
                conf.write_text(config_text)  # the user's edit
            yield Site(root, work, fleet, config_text, not real, before, accounts_before,
                       installed, example)
    finally:
        # Whatever failed: no users, services or files left behind.
        leftovers = [p for p in FOOTPRINT if real and os.path.lexists(p)
                     and p not in (DATA_DIR, "/etc/netstat-collect")]
        if leftovers or any(_exists(pwd.getpwnam, name) for name in USERS) or _exists(grp.getgrnam, GROUP):
            install_script(root, "--uninstall")
        if real:  # the data and the configuration, which --uninstall keeps, were the test's
            shutil.rmtree(DATA_DIR, ignore_errors=True)
            shutil.rmtree("/etc/netstat-collect", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def as_service_user(user: str, group: str) -> list[str]:
    return ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups", "--"]


def under_root(site: Site, command: str) -> str:
    """An installed command line with every absolute path moved under the scratch root."""
    if not site.prefix:
        return command
    return re.sub(r"(^|(?<=\s))/(?=(opt|etc|var)/)", site.prefix + "/", command)


def cron_job(site: Site) -> tuple[str, str, dict[str, str]]:
    """(user, command, environment) of the installed cron file's job line."""
    text = site.path(CRON_FILE).read_text()
    env = dict(re.findall(r"^([A-Z]+)=(.*)$", text, re.MULTILINE))
    jobs = [line for line in text.splitlines() if line and not line.startswith("#") and "=" not in
            line.split()[0]]
    assert len(jobs) == 1, jobs
    fields = jobs[0].split(None, 6)
    return fields[5], fields[6], env


def run_cron_job(site: Site) -> subprocess.CompletedProcess:
    """The cron job as cron runs it: its user, /bin/sh, the file's variables, at the fleet's time."""
    user, command, variables = cron_job(site)
    env = {**variables, "HOME": "/nonexistent", "LOGNAME": user, "NETSTAT_NOW": repr(site.fleet.now)}
    group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    return subprocess.run([*as_service_user(user, group), "/bin/sh", "-c", under_root(site, command)],
                          capture_output=True, text=True, env=env, cwd="/", timeout=300)


def as_collector(site: Site, *args: str) -> subprocess.CompletedProcess:
    """The installed netstat-collect as `netstat`, at the fleet's time."""
    env = {"PATH": "/usr/bin:/bin", "NETSTAT_NOW": repr(site.fleet.now)}
    return subprocess.run([*as_service_user("netstat", GROUP),
                           str(site.path(APP_DIR + "/venv/bin/netstat-collect")), *args],
                          capture_output=True, text=True, env=env, cwd="/", timeout=300)


@dataclass
class Unit:
    exec_start: list[str]
    user: str
    group: str
    umask: int
    environment: dict[str, str]


def read_unit(path: Path) -> Unit:
    text = path.read_text().replace("\\\n", " ")
    settings = {}
    environment = {}
    for key, value in re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE):
        if key == "Environment":
            name, _, val = shlex.split(value)[0].partition("=")
            environment[name] = val
        else:
            settings[key] = value
    return Unit(shlex.split(settings["ExecStart"]), settings["User"], settings["Group"],
                int(settings["UMask"], 8), environment)


class ApiFromUnit:
    """gunicorn started from the installed unit's command line, as its User= and Group=."""

    def __init__(self, site: Site):
        unit = read_unit(site.path(UNIT_FILE))
        argv = [under_root(site, arg) for arg in unit.exec_start]
        bind = argv.index("--bind") + 1
        assert argv[bind] == "127.0.0.1:8081", argv
        argv[bind] = "127.0.0.1:0"  # any free port: the test may not own 8081
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               **{k: under_root(site, v) for k, v in unit.environment.items()},
               "NETSTAT_NOW": repr(site.fleet.now)}
        self.user = unit.user
        self.log = site.work / "gunicorn.log"
        with open(self.log, "wb") as sink:
            self.process = subprocess.Popen([*as_service_user(unit.user, unit.group), *argv],
                                            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd="/",
                                            umask=unit.umask, start_new_session=True)
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only, never a proxy
        self.url = self._wait_for_an_answer()

    def _wait_for_an_answer(self) -> str:
        deadline = time.monotonic() + 60
        while True:
            log = self.log.read_text(errors="replace")
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log)
            if found:
                try:
                    self.session.get(found.group(1) + "/healthz", timeout=5)
                    return found.group(1)
                except requests.ConnectionError:
                    pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.1)

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.url + path, timeout=30)

    def worker_users(self) -> set[str]:
        out = subprocess.run(["ps", "-o", "user=", "--ppid", str(self.process.pid)],
                             capture_output=True, text=True).stdout
        return set(out.split())

    def stop(self) -> None:
        self.session.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


# --- The tests, in the order a person would go: install, look, run, install again, remove ----


def test_install_creates_the_users_directories_and_files(site):
    passwd = {name: pwd.getpwnam(name) for name in USERS}
    data_gid = grp.getgrnam(GROUP).gr_gid
    assert {name: (p.pw_gid, p.pw_dir, p.pw_shell) for name, p in passwd.items()} == {
        name: (data_gid, "/nonexistent", "/usr/sbin/nologin") for name in USERS}
    assert mode_owner(site.path(DATA_DIR)) == ("0o2775", "netstat", "netstat")
    assert mode_owner(site.path(LOG_DIR)) == ("0o755", "netstat", "netstat")
    for installed, shipped in ((CRON_FILE, "deploy/crontab"), (UNIT_FILE, "deploy/gunicorn.service"),
                               (SITE, "deploy/nginx.conf")):
        assert site.path(installed).read_bytes() == (REPO / shipped).read_bytes(), installed
        assert mode_owner(site.path(installed)) == ("0o644", "root", "root"), installed
    assert os.readlink(site.path(SITE_LINK)) == "../sites-available/netstat-api"
    assert mode_owner(site.path(CONF)) == ("0o644", "root", "root")
    if site.example_config is not None:  # there was none: the example
        assert site.example_config == (REPO / "config/routers.json").read_bytes()
        assert f"created    {site.path(CONF)}" in site.installed.stdout
    else:  # the test's own, put there first, is kept
        assert f"kept       {site.path(CONF)} (as it was)" in site.installed.stdout
    venv_python = site.path(APP_DIR + "/venv/bin/python")
    assert venv_python.resolve().is_relative_to(SYSTEM_PYTHON.resolve().parent)
    assert site.path(APP_DIR + "/venv/bin/gunicorn").is_file()


def test_install_prints_what_it_did_and_the_two_next_steps(site):
    out = site.installed.stdout
    for line in ("created    group netstat", "created    user netstat ", "created    user netstat-api ",
                 f"installed  netstat-collect from {REPO}"):
        assert line in out, out
    # No systemd as PID 1 here: the unit is installed, not enabled, and the script says so.
    assert "netstat-api.service not enabled or started" in out or "systemd is not running here" in out
    assert out.rstrip().endswith(
        f"  1. Put your routers in {site.path(CONF)} (README, \"Configuration\").\n"
        "  2. Check it before cron runs it; this fetches and computes but writes nothing:\n"
        f"     sudo -u netstat {site.path(APP_DIR)}/venv/bin/netstat-collect run-once --dry-run "
        f"--config {site.path(CONF)}"), out


def test_the_old_go_daemon_is_disabled_and_its_files_join_the_data_group(site):
    if not site.go_daemon:
        assert OLD_UNIT not in site.installed.stdout  # nothing to replace on this machine
        return
    state = subprocess.run(["systemctl", f"--root={site.root}", "is-enabled", OLD_UNIT],
                           capture_output=True, text=True).stdout.strip()
    assert state == "disabled"
    assert site.path(f"/etc/systemd/system/{OLD_UNIT}").is_file()  # disabled, not removed
    assert f"disabled   {OLD_UNIT}" in site.installed.stdout
    for name in ("network_stats.db", "dhcp_leases.db"):
        assert mode_owner(site.path(f"{DATA_DIR}/{name}")) == ("0o664", "netstat", "netstat"), name


def test_a_second_default_server_gives_way_to_the_api_site(site):
    """Debian's welcome page is a default server too: nginx would refuse both."""
    link = site.path(DEFAULT_SITE_LINK)
    if str(link) not in site.before:
        assert "sites-enabled/default" not in site.installed.stdout  # none here
        return
    assert not os.path.lexists(link)
    assert f"disabled   {link} (a second default server" in site.installed.stdout
    assert site.path("/etc/nginx/sites-available/default").is_file()  # disabled, not removed


def test_systemd_analyze_verifies_the_installed_unit(site, tmp_path):
    """The real root's unit as it lies; a scratch root's beside systemd's own units."""
    if not site.prefix:
        proc = subprocess.run(["systemd-analyze", "verify", UNIT_FILE], capture_output=True, text=True,
                              timeout=60)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
        return
    root = tmp_path / "verify"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copyfile(site.path(UNIT_FILE), root / UNIT_FILE.lstrip("/"))
    gunicorn = root / (APP_DIR + "/venv/bin/gunicorn").lstrip("/")
    gunicorn.parent.mkdir(parents=True)
    shutil.copy2(site.path(APP_DIR + "/venv/bin/gunicorn"), gunicorn)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "netstat-api.service"],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_nginx_accepts_the_installed_site(site, tmp_path):
    """nginx -t with the installed sites-enabled/ (the real machine's whole configuration too)."""
    (tmp_path / "nginx.conf").write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    include {site.path("/etc/nginx/sites-enabled")}/*;
}}
""")
    proc = subprocess.run([_nginx(), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    if not site.prefix:  # on the real root the script ran nginx -t itself
        assert "checked    nginx -t: the configuration is valid" in site.installed.stdout
        assert subprocess.run([_nginx(), "-t"], capture_output=True).returncode == 0


def test_the_collector_and_the_api_as_their_users_read_the_same_numbers(site):
    data_dir = site.path(DATA_DIR)
    before = snapshot(data_dir)
    dry = as_collector(site, "run-once", "--dry-run", "--config", str(site.path(CONF)))
    assert dry.returncode == 0, dry.stderr
    assert snapshot(data_dir) == before  # the README's check before cron: writes nothing

    first = run_cron_job(site)  # first contact: baselines only
    assert first.returncode == 0, site.path(LOG_DIR + "/collect.log").read_text()
    site.fleet.transfer("main", LAPTOP, 100_000, 2_000_000, wan_router="main")
    site.fleet.transfer("main", PHONE, 30_000, 400_000, wan_router="main")
    site.fleet.advance(1800)
    second = run_cron_job(site)
    assert second.returncode == 0, site.path(LOG_DIR + "/collect.log").read_text()
    log = site.path(LOG_DIR + "/collect.log")
    assert log.read_text().count("main: ap_stats 2 stations; wan_stats ok") == 2
    assert mode_owner(log)[1:] == ("netstat", "netstat")

    truth = truth_of(site.fleet)
    old = GO_TOTALS if site.go_daemon else {}

    def plus_old(device: str) -> list[int]:
        rx, tx = old.get(device, (0, 0))
        return [truth[device][0] + rx, truth[device][1] + tx]

    expected_wan = plus_old("main_wan")
    expected_clients = {mac: plus_old(mac) for mac in (LAPTOP, PHONE)}

    report = as_collector(site, "report", "--json", "--data-dir", str(data_dir))
    assert report.returncode == 0, report.stderr
    api = ApiFromUnit(site)
    try:
        usage = api.get("/api/v1/usage")
        health = api.get("/healthz")
        combined = api.get("/api.php?action=combined")
        workers = api.worker_users()
    finally:
        api.stop()
    assert workers == {api.user} == {"netstat-api"}
    assert (usage.status_code, health.status_code, combined.status_code) == (200, 200, 200), (
        usage.text, health.text, api.log.read_text())
    assert usage.json() == json.loads(report.stdout)  # what the collector's user reads
    assert [usage.json()["wan"]["rx_bytes"], usage.json()["wan"]["tx_bytes"]] == expected_wan
    assert {c["mac"]: [c["rx_bytes"], c["tx_bytes"]] for c in usage.json()["clients"]} == expected_clients


def test_a_second_install_changes_nothing(site):
    before, accounts_before = site.footprint(), accounts()
    again = run_script(site.root)
    assert site.footprint() == before
    assert accounts() == accounts_before
    assert "nothing to change, everything was in place." in again.stdout, again.stdout
    assert not re.search(r"^  (created|updated|installed|enabled|disabled|started|removed) ",
                         again.stdout, re.MULTILINE), again.stdout


def test_uninstall_leaves_everything_as_it_was_but_the_data_and_configuration(site):
    config_before = site.path(CONF).read_text()
    databases = sorted(p.name for p in site.path(DATA_DIR).glob("*.db"))
    removed = run_script(site.root, "--uninstall")
    assert accounts() == site.accounts_before == []

    def outside_data_and_configuration(entries: dict[str, tuple]) -> dict[str, tuple]:
        kept = (str(site.path(DATA_DIR)), str(site.path("/etc/netstat-collect")))
        return {p: e for p, e in entries.items() if not p.startswith(kept)}

    expected = outside_data_and_configuration(site.before)
    if site.go_daemon:  # the old daemon stays disabled: its enablement link is the one difference
        wants = str(site.path("/etc/systemd/system/multi-user.target.wants"))
        expected = {p: e for p, e in expected.items() if not p.startswith(wants)}
    assert outside_data_and_configuration(site.footprint()) == expected
    assert site.path(CONF).read_text() == config_before == site.config_text
    assert sorted(p.name for p in site.path(DATA_DIR).glob("*.db")) == databases == [
        "dhcp_leases.db", "network_stats.db"]
    assert "kept       " + str(site.path(DATA_DIR)) in removed.stdout
    again = run_script(site.root, "--uninstall")
    assert "nothing to remove." in again.stdout, again.stdout
