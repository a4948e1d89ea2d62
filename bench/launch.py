"""Run one command and report what the kernel accounted for it, from a small process.

    python -S bench/launch.py RESULT.json COMMAND [ARGS...]

Writes {"code", "wall", "user", "sys", "maxrss"} for COMMAND to RESULT.json.

Why a separate launcher: Linux reports a child's peak memory (ru_maxrss) as at
least the peak of the process that spawned it (vfork and fork both carry the
parent's high-water mark into the child). The bench process itself grows to
tens of MiB, which would hide a run's real peak; this launcher stays at about
10 MiB. Standard library only and no `site`, to stay small.
"""

import json
import os
import sys
import time


def main() -> int:
    result_path, argv = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    with open(result_path, "w") as f:
        json.dump({"code": os.waitstatus_to_exitcode(status), "wall": wall,
                   "user": usage.ru_utime, "sys": usage.ru_stime,
                   "maxrss": usage.ru_maxrss * 1024}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
