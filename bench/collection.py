"""Sections 1-3: a run-once's time and CPU, its disk syncs and transactions, its peak memory.

The collector runs as the real CLI in a child process (`python -m collector
run-once`), against a fleet served by another process (bench.fleet_server) on
virtual time; the child's clock is set to the fleet's with NETSTAT_NOW. The first
run of each fleet only records baselines; the measured runs are the ones after
it, each after the fleet's devices moved 30 minutes of traffic.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    MIB,
    REPO,
    ChildRun,
    Profile,
    Sample,
    Section,
    clean_env,
    collector_argv,
    fmt,
    log,
    run_child,
)
from collector import fetch
from collector.schema import STATS_DB

INTERVAL = 1800.0  # seconds of traffic between two runs, as from cron
SYNC_CALLS = "fsync,fdatasync,msync,sync_file_range,sync,syncfs"


class FleetProcess:
    """A bench.fleet_server child: routers on 127.0.0.1, driven over its stdin."""

    def __init__(self, work: Path, routers: int, stations: int, latency: float,
                 extra: str | None = None, timeout: float = 10.0):
        name = f"fleet-{routers}x{stations}" + (f"-{extra}" if extra else "")
        self.config = work / f"{name}.json"
        self.log_path = work / f"{name}.log"
        argv = [sys.executable, "-m", "bench.fleet_server", "--routers", str(routers),
                "--stations", str(stations), "--latency", repr(latency),
                "--config", str(self.config), "--timeout", repr(timeout)]
        if extra:
            argv += ["--extra", extra]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, cwd=REPO, env=clean_env())
        try:
            self.now = float(self._reply("ready", timeout=120)[0])
        except BaseException:
            self.close()
            raise

    def _reply(self, expected: str, timeout: float = 60) -> list[str]:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        word, *rest = line.split() or [""]
        if word != expected:
            raise RuntimeError(f"fleet server: expected {expected!r}, got {line!r} "
                               f"(see {self.log_path})")
        return rest

    def _send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def advance(self, seconds: float = INTERVAL) -> float:
        self._send(f"advance {seconds!r}")
        self.now = float(self._reply("ok")[0])
        return self.now

    def cpu(self) -> tuple[float, int]:
        """CPU seconds this server has used so far, and requests it has served."""
        self._send("cpu")
        seconds, served = self._reply("cpu")
        return float(seconds), int(served)

    def close(self) -> None:
        try:
            self._send("quit")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> FleetProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_once(fleet: FleetProcess, data_dir: Path, work: Path, prefix: list[str] | None = None,
             cli: list[str] | None = None) -> ChildRun:
    """One `run-once` child at the fleet's clock; `prefix` wraps it (strace), `cli` replaces
    `python -m collector`."""
    argv = (prefix or []) + (cli or collector_argv()) + [
        "run-once", "--config", str(fleet.config), "--data-dir", str(data_dir)]
    run = run_child(argv, env=clean_env(NETSTAT_NOW=repr(fleet.now)), timeout=300, scratch=work)
    if run.code != 0:
        raise RuntimeError(f"run-once exited {run.code}: {run.stderr[-2000:]}")
    return run


def fetch_only(fleet: FleetProcess, workers: int | None = None) -> float:
    """The fetching alone, in this process: every endpoint of the config, at once.

    `workers` replaces collector.fetch.MAX_WORKERS for this call (a what-if).
    """
    import time

    from collector.config import load_config
    from collector.fetch import requests_for

    requests_ = requests_for(load_config(fleet.config).routers)
    saved = fetch.MAX_WORKERS
    fetch.MAX_WORKERS = workers or saved
    try:
        start = time.perf_counter()
        fetched = fetch.fetch_all(requests_)
        elapsed = time.perf_counter() - start
    finally:
        fetch.MAX_WORKERS = saved
    failed = [f for f in fetched if not f.ok]
    if failed:
        raise RuntimeError(f"fetch failed: {failed[0].error}")
    return elapsed


def request_count(fleet: FleetProcess) -> int:
    from collector.config import load_config
    from collector.fetch import requests_for

    return len(requests_for(load_config(fleet.config).routers))


# --- 1. run-once time and CPU; 2. syncs; memory of the same runs --------------------------------


@dataclass
class FleetResult:
    routers: int
    stations: int
    first: ChildRun | None = None
    wall: Sample = field(default_factory=Sample)
    cpu: Sample = field(default_factory=Sample)
    maxrss: Sample = field(default_factory=Sample)
    fetch: Sample = field(default_factory=Sample)
    fetch_wide: Sample = field(default_factory=Sample)  # one worker per request
    requests: int = 0
    server_cpu: Sample = field(default_factory=Sample)
    phases: list[Instrumented] = field(default_factory=list)
    syncs: Instrumented | None = None

    @property
    def devices(self) -> int:
        return self.routers * self.stations


@dataclass
class Instrumented:
    """A run through bench.traced_cli: its transactions, its phases, and (with strace) its syncs."""

    per_file: Counter | None  # sync calls per file; None: not traced with strace
    transactions: dict[str, dict[str, int]]
    phases: dict[str, float]
    span: float  # seconds from the wrapper's first line to exit
    wall: float  # seconds, as the launcher saw the whole process

    @property
    def total(self) -> int | None:
        return None if self.per_file is None else sum(self.per_file.values())


def strace_available() -> str | None:
    """None when strace can trace a child here, else why not."""
    if shutil.which("strace") is None:
        return "strace is not installed (apt-get install strace)"
    probe = subprocess.run(["strace", "-f", "-qq", "-e", "trace=fsync", "-o", os.devnull,
                            sys.executable, "-c", "pass"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.strip()[:200]}"
    return None


_SYNC_LINE = re.compile(r"^\d+\s+(\w+)\((\d+)<([^>]*)>")


def parse_strace(path: Path, data_dir: Path) -> Counter:
    """Count sync calls per file from `strace -y` output."""
    counts: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        match = _SYNC_LINE.match(line)
        if match is None:
            if re.match(r"^\d+\s+(sync|syncfs)\(", line):
                counts["(whole filesystem)"] += 1
            continue
        target = Path(match.group(3))
        if target == data_dir:
            name = "(data directory)"
        elif target.parent == data_dir:
            name = target.name
        else:
            name = str(target)
        counts[name] += 1
    return counts


def instrumented_run(fleet: FleetProcess, data_dir: Path, work: Path, *, strace: bool,
                     count: bool) -> Instrumented:
    """A run through bench.traced_cli: timed phases, and transactions counted when `count`,
    sync calls when `strace`."""
    log_path = work / "strace.log"
    out_path = work / "instrumented.json"
    prefix = ["strace", "-f", "-y", "-qq", "-e", f"trace={SYNC_CALLS}", "-e", "signal=none",
              "-o", str(log_path)] if strace else []
    wrapper = [sys.executable, "-m", "bench.traced_cli"] + (["--transactions"] if count else [])
    run = run_once(fleet, data_dir, work, prefix, cli=wrapper + [str(out_path)])
    found = json.loads(out_path.read_text())
    per_file = parse_strace(log_path, data_dir) if strace else None
    return Instrumented(per_file, found["transactions"], found["phases"], found["span"], run.wall)


def writer_syncs(python: str, mode: str, devices: int, work: Path, max_seconds: float,
                 trace: bool = True) -> tuple[Counter, dict]:
    """Syncs of bench/writers.py writing `devices` devices (a setup run first, untraced)."""
    directory = work / f"writer-{mode}-{devices}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    database = directory / STATS_DB
    script = str(REPO / "bench" / "writers.py")
    setup = subprocess.run([python, script, mode, str(database), str(devices), "0"],
                           capture_output=True, text=True, timeout=600)
    if setup.returncode != 0:
        raise RuntimeError(f"writers.py {mode}: {setup.stderr[-1000:]}")
    log_path = directory.parent / f"strace-{mode}.log"
    argv = ["strace", "-f", "-y", "-qq", "-e", f"trace={SYNC_CALLS}", "-e", "signal=none",
            "-o", str(log_path)] if trace else []
    argv += [python, script, mode, str(database), str(devices), "1",
             "--max-seconds", repr(max_seconds)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=max_seconds * 3 + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"writers.py {mode}: {proc.stderr[-1000:]}")
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    counts = parse_strace(log_path, directory) if trace else Counter()
    shutil.rmtree(directory, ignore_errors=True)
    return counts, outcome


def python_312() -> str | None:
    """An interpreter with Connection.setconfig (3.12+) for the fix sketch, if one is here."""
    candidates = [sys.executable] + [shutil.which(f"python3.{minor}") or "" for minor in range(12, 16)]
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [str(p / "bin" / "python3") for p in sorted(pyenv.iterdir())]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run([candidate, "-c", "import sqlite3, sys; "
                                "sqlite3.Connection.setconfig; print(sys.version.split()[0])"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return candidate
    return None


def bench_fleets(profile: Profile, work: Path) -> tuple[list[FleetResult], str | None]:
    """Section 1's runs; the fleets in profile.sync_fleets get one more, traced, run."""
    no_strace = strace_available()
    results = []
    for routers, stations in profile.fleets:
        log(f"1. run-once: {routers} routers x {stations} stations")
        result = FleetResult(routers, stations)
        data_dir = work / f"data-{routers}x{stations}"
        with FleetProcess(work, routers, stations, profile.latency) as fleet:
            result.first = run_once(fleet, data_dir, work)
            for _ in range(profile.repeats):
                fleet.advance()
                cpu_before, _ = fleet.cpu()
                run = run_once(fleet, data_dir, work)
                cpu_after, _ = fleet.cpu()
                result.wall.add(run.wall)
                result.cpu.add(run.cpu)
                result.maxrss.add(run.maxrss)
                result.server_cpu.add(cpu_after - cpu_before)
                result.fetch.add(fetch_only(fleet))
                result.requests = request_count(fleet)
                result.fetch_wide.add(fetch_only(fleet, workers=max(result.requests, 1)))
            for _ in range(max(1, profile.repeats // 2)):
                fleet.advance()
                result.phases.append(instrumented_run(fleet, data_dir, work, strace=False,
                                                      count=False))
            if (routers, stations) in profile.sync_fleets:
                fleet.advance()
                result.syncs = instrumented_run(fleet, data_dir, work, strace=no_strace is None,
                                                count=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        results.append(result)
    return results, no_strace


PHASES = ("interpreter start-up + exit", "imports", "open + migrate databases", "load baselines",
          "fetch", "parse + account", "bucket into periods and days", "commit network_stats.db",
          "commit dhcp_leases.db", "close databases (checkpoint)", "other (CLI, config, output)")


def phase_medians(result: FleetResult) -> dict[str, float]:
    """Median seconds per phase over the instrumented runs of one fleet."""
    samples = {name: Sample() for name in PHASES}
    for run in result.phases:
        known = dict(run.phases)
        known["interpreter start-up + exit"] = run.wall - run.span
        known["other (CLI, config, output)"] = run.span - sum(run.phases.values())
        for name in PHASES:
            samples[name].add(known.get(name, 0.0))
    return {name: sample.median for name, sample in samples.items()}


def section_run_once(profile: Profile, results: list[FleetResult]) -> Section:
    s = Section("1", "run-once: wall time and CPU")
    rows = []
    for r in results:
        overhead = Sample([w - profile.latency for w in r.wall.values])
        rows.append([
            f"{r.routers} x {fmt(r.stations)}", fmt(r.devices),
            fmt(r.first.wall if r.first else None),
            fmt(r.wall.median), fmt(r.wall.min),
            fmt(overhead.median), fmt(overhead.min),
            fmt(r.cpu.median), fmt(r.requests), fmt(r.fetch.median), fmt(r.fetch_wide.median),
            fmt(r.server_cpu.median),
        ])
    s.table(["routers x stations", "stations", "first run s", "run s (median)", "run s (min)",
             "overhead s (median)", "overhead s (min)", "CPU s user+sys (median)", "requests",
             "fetch alone s (median)", "fetch alone, a worker per request s",
             "fleet server CPU s/run"], rows)
    s.table(["routers x stations"] + [f"{p} s" for p in PHASES],
            [[f"{r.routers} x {fmt(r.stations)}"] + [fmt(v) for v in phase_medians(r).values()]
             for r in results])
    s.note(f"Every router answers after an added {profile.latency:g} s; overhead = run wall "
           f"time - {profile.latency:g} s, the time a run costs beyond its slowest router. "
           f"Median and min of {profile.repeats} runs, each after 30 simulated minutes of traffic "
           "(the first run only records baselines and is shown apart).")
    s.note("A run is the real CLI in a new process (`python -m collector run-once`), so the "
           "overhead includes interpreter start-up and imports (section 4). 'fetch alone' is "
           "collector.fetch.fetch_all over the same endpoints in the bench process; 'a worker per "
           "request' is the same with collector.fetch.MAX_WORKERS set to the number of requests, "
           f"patched in the bench process only (the collector's own setting is {fetch.MAX_WORKERS}, "
           "so the two columns should agree).")
    s.note("The second table is where a run's time goes (median of "
           f"{max(1, profile.repeats // 2)} more runs through bench/traced_cli.py, which times "
           "the collector's functions from outside). 'fetch' includes the routers' latency; "
           "start-up + exit is the process's wall time minus what the wrapper saw.")
    s.note("The fleet: router-1 has the WAN and the DHCP server (a lease for every station of "
           "the fleet), every router is an access point. Its server is a separate process that "
           "renders answers ahead of the run; 'fleet server CPU' is what it spent during one run "
           "(sending bytes), far below the run's own CPU, so it is not the bottleneck. Both share "
           "the machine's cores.")
    return s


def _per_file(counts: Counter | None) -> str:
    if counts is None:
        return "n/a (no strace)"
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"


def section_syncs(profile: Profile, results: list[FleetResult], work: Path,
                  no_strace: str | None) -> tuple[Section, dict]:
    s = Section("2", "Disk syncs and transactions per run")
    verdict: dict = {}
    strace = no_strace is None
    rows = []
    naive_rows = []
    python12 = python_312()
    for r in results:
        if r.syncs is None:
            continue
        sync = r.syncs
        devices = r.devices + 1  # + main_wan
        commits = {name: counts.get("COMMIT", 0) for name, counts in sync.transactions.items()}
        per_db: Counter = Counter()
        for name, n in (sync.per_file or {}).items():
            db = name.removesuffix("-wal").removesuffix("-journal").removesuffix("-shm")
            per_db[db if db.endswith(".db") else "other (data directory, ...)"] += n
        rows.append([
            f"{r.routers} x {fmt(r.stations)}", fmt(devices), "collector run-once",
            fmt(sum(commits.values())),
            ", ".join(f"{k} {v}" for k, v in sorted(commits.items())),
            fmt(sync.total), _per_file(sync.per_file),
        ])
        verdict.setdefault("collector", []).append((devices, sync.total, dict(per_db), commits))
        log(f"2. naive writer: {fmt(devices)} devices")
        counts, outcome = writer_syncs(sys.executable, "naive", devices, work,
                                       profile.naive_max_seconds, trace=strace)
        total = sum(counts.values()) if strace else None
        extrapolated = not outcome["complete"]
        if extrapolated and total is not None:
            total = round(total / max(outcome["written"], 1) * devices)
        naive_rows.append([
            fmt(devices), "naive: a transaction per device (rollback journal, synchronous=FULL)",
            fmt(devices),
            fmt(total) + (f" (extrapolated from {fmt(outcome['written'])} devices)"
                          if extrapolated and total is not None else ""),
            fmt(outcome["seconds"]) + (f" (stopped at {fmt(outcome['written'])} devices)"
                                       if extrapolated else ""),
            _per_file(counts if strace else None),
        ])
        verdict.setdefault("naive", []).append((devices, total))
        for mode, label, python in (
            ("single", f"the collector's pattern in a script (Python {sys.version.split()[0]})",
             sys.executable),
            ("single-nockpt", "fix sketch: + NO_CKPT_ON_CLOSE, synchronous=NORMAL (Python 3.12+)",
             python12),
            ("single-nockpt-full", "fix sketch: + NO_CKPT_ON_CLOSE, synchronous=FULL (Python 3.12+)",
             python12),
        ):
            if python is None:
                continue
            counts, outcome = writer_syncs(python, mode, devices, work, profile.naive_max_seconds,
                                           trace=strace)
            naive_rows.append([fmt(devices), label, "1",
                               fmt(sum(counts.values())) if strace else "n/a",
                               fmt(outcome["seconds"]), _per_file(counts if strace else None)])
    if rows:
        s.table(["routers x stations", "devices (+ main_wan)", "what", "COMMITs",
                 "COMMITs per database", "sync calls", "sync calls per file"], rows)
    if naive_rows:
        s.table(["devices", "design (same run, one database)", "transactions", "sync calls",
                 "seconds", "sync calls per file"], naive_rows)
    if not strace:
        s.note(f"Sync calls not counted: {no_strace}.")
    s.note("Sync calls are counted with `strace -f -y -e trace=" + SYNC_CALLS + "` on the whole "
           "process; COMMITs with sqlite3's trace callback on every connection the collector opens "
           "(bench/traced_cli.py wraps sqlite3.connect, the CLI is unchanged). A measured run is a "
           "counting run (not the first one, which creates the files).")
    s.note("The naive baseline writes the old Go daemon's tables (cumulative_stats, monthly_stats) "
           "for the same number of devices, one transaction per device, with SQLite's defaults "
           "(rollback journal, synchronous=FULL). It and the sketches below it write one "
           "database; the collector's numbers cover both of its databases. The sketches write the "
           "same rows in one transaction: as the collector does, then with the fix for the "
           "checkpoint on close (section 'Targets', note on syncs).")
    if python12 is None:
        s.note("Fix sketches skipped: no Python 3.12+ interpreter found (Connection.setconfig).")
    return s, verdict


# --- 3. peak memory ----------------------------------------------------------------------------


CAP_CASES = {
    "small": "1 router x 20 stations (reference)",
    "cap-padding": "+ 1 AP answering exactly the 4 MiB cap (comment lines, 0 stations)",
    "cap-stations": "+ 1 AP answering exactly the 4 MiB cap of station lines",
    "over-cap": "+ 1 AP answering far beyond the cap, no Content-Length (refused at the cap)",
}


def bench_memory(profile: Profile, work: Path) -> dict[str, Sample]:
    samples = {}
    for case in profile.cap_cases:
        log(f"3. memory: {case}")
        extra = None if case == "small" else case
        expected = 1 if case == "over-cap" else 0  # the over-cap endpoint fails, the rest commits
        data_dir = work / f"data-mem-{case}"
        with FleetProcess(work, 1, 20, 0.0, extra=extra) as fleet:
            run_once_partial(fleet, data_dir, work, expected)
            sample = Sample()
            for _ in range(max(profile.repeats, 2)):
                fleet.advance()
                sample.add(run_once_partial(fleet, data_dir, work, expected).maxrss)
            samples[case] = sample
        shutil.rmtree(data_dir, ignore_errors=True)
    return samples


def run_once_partial(fleet: FleetProcess, data_dir: Path, work: Path, expected: int) -> ChildRun:
    """A run that must exit with `expected` (1: one endpoint is meant to fail)."""
    argv = collector_argv("run-once", "--config", str(fleet.config), "--data-dir", str(data_dir))
    run = run_child(argv, env=clean_env(NETSTAT_NOW=repr(fleet.now)), timeout=300, scratch=work)
    if run.code != expected:
        raise RuntimeError(f"run-once exited {run.code}: {run.stderr[-2000:]}")
    return run


def section_memory(profile: Profile, fleets: list[FleetResult], samples: dict[str, Sample]
                   ) -> tuple[Section, dict]:
    s = Section("3", "Peak memory of a run")
    rows = []
    for r in fleets:
        rows.append([f"{r.routers} x {fmt(r.stations)}", fmt(r.maxrss.median / MIB, 1),
                     fmt(r.maxrss.max / MIB, 1)])
    s.table(["routers x stations (section 1)", "peak RSS MiB (median)", "peak RSS MiB (max)"], rows)
    reference = samples.get("small")
    cap_rows = []
    for case, sample in samples.items():
        added = sample.median - reference.median if reference and case != "small" else None
        cap_rows.append([CAP_CASES[case], fmt(sample.median / MIB, 1),
                         fmt(added / MIB, 1) if added is not None else "-"])
    s.table(["case (latency 0)", "peak RSS MiB (median)", "added over the reference MiB"], cap_rows)
    s.note("Peak RSS is ru_maxrss of the run-once process from wait4() in bench/launch.py, the "
           "same number `/usr/bin/time -v` prints as 'Maximum resident set size'. It is taken in "
           "a small launcher process because Linux carries the spawning process's own peak into "
           "the child's ru_maxrss. The cap is collector.fetch.SIZE_CAP = 4 MiB; the cap cases "
           "add one access point to the reference fleet and run with no added latency.")
    verdict = {
        "peak": [(r.routers, r.stations, r.maxrss.median) for r in fleets],
        "cap": {case: sample.median for case, sample in samples.items()},
    }
    return s, verdict
