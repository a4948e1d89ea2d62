"""Section 4: process start-up, and what `netstat-collect --help` imports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO, Profile, Sample, Section, clean_env, fmt, log, run_child


@dataclass
class StartupResult:
    samples: dict[str, Sample]
    imports: list[tuple[str, int, int, int]]  # module, cumulative us, self us, level: beyond -c pass
    module_counts: tuple[int, int]  # modules imported by `-c pass`, by `--help`
    console_script: str | None


def _console_script() -> str | None:
    """The installed `netstat-collect` next to this interpreter, if there is one."""
    candidate = Path(sys.executable).parent / "netstat-collect"
    if candidate.exists():
        return str(candidate)
    return shutil.which("netstat-collect")


def _empty_config(work: Path) -> Path:
    """One router with every endpoint empty: a valid config that fetches nothing."""
    path = work / "routers-empty.json"
    path.write_text(json.dumps({"settings": {"timezone": "UTC"},
                                "routers": {"idle": {"ap_stats": "", "wan_stats": "",
                                                     "dhcp_leases": ""}}}))
    return path


def bench_startup(profile: Profile, work: Path) -> StartupResult:
    log("4. start-up")
    config = _empty_config(work)
    data_dir = work / "data-empty"
    script = _console_script()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -m collector --help": [sys.executable, "-m", "collector", "--help"],
        "python -m collector run-once (empty config)": [
            sys.executable, "-m", "collector", "run-once", "--config", str(config),
            "--data-dir", str(data_dir)],
    }
    if script:
        commands["netstat-collect --help"] = [script, "--help"]
    # References: what any CLI built on click, or on argparse, pays before doing anything.
    commands["python -c 'import click'"] = [sys.executable, "-c", "import click"]
    commands["python -c 'import argparse'"] = [sys.executable, "-c", "import argparse"]
    env = clean_env()
    # The first run creates the databases; it is not start-up, so it is not measured.
    first = run_child(commands["python -m collector run-once (empty config)"], env=env,
                      scratch=work)
    if first.code != 0:
        raise RuntimeError(f"run-once on the empty config exited {first.code}: {first.stderr}")
    for argv in commands.values():  # warm the page cache and the bytecode caches
        run_child(argv, env=env, scratch=work)
    samples = {name: Sample() for name in commands}
    for _ in range(profile.startup_repeats):
        for name, argv in commands.items():  # interleaved: noise hits every command alike
            run = run_child(argv, env=env, scratch=work)
            if run.code != 0:
                raise RuntimeError(f"{name} exited {run.code}: {run.stderr[-1000:]}")
            samples[name].add(run.wall)
    baseline = _importtime([sys.executable, "-X", "importtime", "-c", "pass"])
    help_imports = _importtime([sys.executable, "-X", "importtime", "-m", "collector", "--help"])
    extra = [(name, cumulative, own, level) for name, (own, cumulative, level)
             in help_imports.items() if name not in baseline]
    extra.sort(key=lambda item: -item[1])
    shutil.rmtree(data_dir, ignore_errors=True)
    return StartupResult(samples, extra, (len(baseline), len(help_imports)), script)


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)")


def _importtime(argv: list[str]) -> dict[str, tuple[int, int, int]]:
    """module -> (self us, cumulative us, nesting level) from `python -X importtime`."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), cwd=REPO,
                          timeout=60)
    modules = {}
    for line in proc.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            level = (len(match.group(3)) - 1) // 2
            modules[match.group(4)] = (int(match.group(1)), int(match.group(2)), level)
    return modules


def section_startup(result: StartupResult) -> tuple[Section, dict]:
    s = Section("4", "Process start-up")
    base = result.samples["python -c pass"].median
    rows = []
    for name, sample in result.samples.items():
        rows.append([f"`{name}`", fmt(sample.median * 1000, 1), fmt(sample.min * 1000, 1),
                     fmt(sample.median / base, 2) + "x"])
    s.table(["command", "wall ms (median)", "wall ms (min)", "vs python -c pass (median)"], rows)
    top = result.imports[:15]
    s.table(["module imported by `--help`, not by `python -c pass`", "nesting", "cumulative ms",
             "self ms"],
            [[f"`{name}`", str(level), fmt(cum / 1000, 1), fmt(own / 1000, 1)]
             for name, cum, own, level in top])
    s.note(f"`python -c pass` imports {result.module_counts[0]} modules, "
           f"`python -m collector --help` {result.module_counts[1]} (`python -X importtime`, "
           "one run, so single numbers are noisy). Commands run interleaved, "
           f"{len(next(iter(result.samples.values())).values)} times each, after one warm-up.")
    s.note("`import click` and `import argparse` are references: the least any CLI built on "
           "them pays (click is what netstat-collect uses).")
    s.note("run-once on the empty config: one router whose endpoints are all empty (a valid "
           "config that fetches nothing); it still opens, checks and commits both databases.")
    if result.console_script is None:
        s.note("No installed `netstat-collect` script found next to this Python: "
               "`python -m collector --help` stands for it.")
    help_name = ("netstat-collect --help" if "netstat-collect --help" in result.samples
                 else "python -m collector --help")
    verdict = {"imports": {name: cumulative for name, cumulative, _, _ in result.imports},
               "help": result.samples[help_name].median, "help_name": help_name, "pass": base,
               "run_once_empty": result.samples["python -m collector run-once (empty config)"].median,
               "click": result.samples["python -c 'import click'"].median,
               "argparse": result.samples["python -c 'import argparse'"].median}
    return s, verdict
