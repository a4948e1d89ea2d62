"""Fault injection for the reliability tests: SIGKILL this process at a named point of a run.

`NETSTAT_CRASH_AT=stats-written` (for example) kills the collector right there,
which is how the crash matrix reaches moments a timer cannot hit reliably, such
as between the two databases' commits. Unset, it costs one dictionary lookup.
"""

import os
import signal

POINTS = ("fetched", "stats-written", "stats-committed", "leases-written", "leases-committed")


def crash_point(name: str) -> None:
    if os.environ.get("NETSTAT_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
