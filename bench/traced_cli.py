"""The real `netstat-collect` CLI, instrumented from outside: transactions and phases.

    python -m bench.traced_cli [--transactions] OUT.json run-once --config ... --data-dir ...

The collector's code is unchanged; before the CLI runs, this wraps

- sqlite3.connect: connections get a class whose close() is timed (closing
  checkpoints the WAL) and, with --transactions, sqlite3's trace callback (which
  sees each statement as SQLite runs it) to count BEGIN and COMMIT per database
  file. The callback runs for every row of an executemany, so it slows the
  commits down: the timing runs go without it;
- the functions a run goes through (collector.run's fetch_all, _account, bucket;
  collector.storage's open, migrate, load and commit functions), to time them.

At exit it writes {"transactions": {file: {verb: n}}, "phases": {name: seconds},
"span": seconds from this module's first line to exit} to OUT.json.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import atexit  # noqa: E402 (timed from the line above)
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402

_counts: dict[str, Counter] = {}
_phases: Counter = Counter()
_connect = sqlite3.connect
_trace = False


class _TimedConnection(sqlite3.Connection):
    def close(self) -> None:
        start = time.perf_counter()
        try:
            super().close()
        finally:
            _phases["close databases (checkpoint)"] += time.perf_counter() - start


def _traced_connect(database, *args, **kwargs):
    kwargs.setdefault("factory", _TimedConnection)
    conn = _connect(database, *args, **kwargs)
    if not _trace:
        return conn
    name = os.path.basename(str(database).split("?")[0].removeprefix("file:"))
    counter = _counts.setdefault(name, Counter())

    def trace(statement: str) -> None:
        words = statement.split(None, 1)
        verb = words[0].upper() if words else ""
        if verb in ("BEGIN", "COMMIT", "END", "ROLLBACK"):
            counter["COMMIT" if verb == "END" else verb] += 1

    conn.set_trace_callback(trace)
    return conn


def _timed(module, attribute: str, phase: str) -> None:
    original = getattr(module, attribute)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _phases[phase] += time.perf_counter() - start

    setattr(module, attribute, wrapper)


def _dump(path: str) -> None:
    span = time.perf_counter() - _T0
    with open(path, "w") as f:
        json.dump({"transactions": {name: dict(c) for name, c in _counts.items()},
                   "phases": dict(_phases), "span": span}, f)


def main() -> None:
    global _trace
    args = sys.argv[1:]
    if args[0] == "--transactions":
        _trace = True
        args = args[1:]
    out, cli_args = args[0], args[1:]
    sqlite3.connect = _traced_connect
    atexit.register(_dump, out)
    start = time.perf_counter()
    import collector.run
    from collector import storage
    from collector.cli import cli

    _phases["imports"] += time.perf_counter() - start + (start - _T0)
    for attribute, phase in (("fetch_all", "fetch"), ("_parse", "parse + account"),
                             ("_account", "parse + account"), ("bucket", "bucket into periods and days")):
        _timed(collector.run, attribute, phase)
    for attribute, phase in (("check_pair", "open + migrate databases"),
                             ("connect_writer", "open + migrate databases"),
                             ("migrate_stats", "open + migrate databases"),
                             ("migrate_leases", "open + migrate databases"),
                             ("load_states", "load baselines"),
                             ("commit_stats", "commit network_stats.db"),
                             ("commit_leases", "commit dhcp_leases.db")):
        _timed(storage, attribute, phase)
    cli(args=cli_args, prog_name="netstat-collect")


if __name__ == "__main__":
    main()
