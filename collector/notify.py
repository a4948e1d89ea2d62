"""Sending messages through Apprise: the only module that imports it, and only when called.

Apprise (and markdown, yaml, oauthlib beneath it) costs more to import than a whole run
with nothing to send, so the import happens inside `send` and `validate`: a run with no
alert due never loads it (bench/RESULTS.md, section 11).

Messages are sent from a child process (`send_all`), waited for `deadline` seconds at most
and killed then: a notification service that hangs cannot hold the run (and its lock)
longer than that, nor one that floods its answer take the run's memory.
What a service answers is hostile like everything from outside: the reason kept is
redacted, stripped of the target's URL and its parts, escaped and cut.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass

from collector.text import log_safe

# A reason longer than this says nothing more.
REASON_CHARS = 300


@dataclass(frozen=True)
class Sent:
    """One attempt to one target: `error` is None when the service took the message."""

    label: str
    error: str | None


def _apprise():
    """The apprise module, imported (with the plugins `urls` need) in the calling thread.

    Its plugins' own deprecation warnings (imghdr, from the PGP support) are not ours to
    print into a cron log, and the import is done before any sending thread starts: the
    filter that hides them is process-wide and not thread-safe.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise
        import apprise.plugins.email  # noqa: F401  (loads the PGP support and its shim)
    return apprise


def _asset():
    import apprise

    # In memory: Apprise must not write a cache under the home directory of the user cron
    # runs as (it may have none, or a read-only one).
    return apprise.AppriseAsset(storage_mode="memory", app_id="netstat-collect",
                                app_desc="netstat-collect alerts", app_url="")


def _secret_parts(url: str) -> list[str]:
    """The pieces of a target's URL that could be secrets, longest first: user info,
    password, host (a token for many services), path segments and query values."""
    parts = {url}
    for piece in re.split(r"[:/@?&=#]+", url.split("://", 1)[-1]):
        if len(piece) >= 4:
            parts.add(piece)
    return sorted(parts, key=len, reverse=True)


def scrub(reason: str, url: str) -> str:
    """A reason with the target's URL and every part of it that could be a secret hidden."""
    for part in _secret_parts(url):
        reason = reason.replace(part, "***")
    return log_safe(reason, REASON_CHARS)


def _problem(apprise, url: str) -> str | None:
    """Why Apprise cannot use `url`, or None."""
    a = apprise.Apprise(asset=_asset())
    if not a.add(url):
        scheme = url.split("://", 1)[0]
        return f"not a URL Apprise understands (scheme {log_safe(scheme, 20)!s}:// with these " \
               "parts); see https://github.com/caronc/apprise/wiki"
    return None


def validate(urls: list[str]) -> list[str | None]:
    """For each URL, why Apprise cannot use it, or None; nothing is sent."""
    apprise = _apprise()
    with apprise.LogCapture(level=logging.WARNING):  # Apprise logs its own complaints: not ours to print
        return [_problem(apprise, url) for url in urls]


def _send_now(url: str, title: str, body: str, outcome: dict) -> None:
    try:
        import apprise

        with apprise.LogCapture(level=logging.WARNING) as logs:
            problem = _problem(apprise, url)
            if problem:
                outcome["error"] = problem
                return
            a = apprise.Apprise(asset=_asset())
            a.add(url)
            ok = a.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
        if not ok:
            lines = [line.split(" - ", 2)[-1] for line in logs.getvalue().splitlines() if line.strip()]
            outcome["error"] = scrub("; ".join(lines[-3:]) or "the service refused the message", url)
        else:
            outcome["error"] = None
    except Exception as e:  # a plugin's bug must not end the run: it is this target's failure
        outcome["error"] = scrub(f"{type(e).__name__}: {e}", url)


@dataclass(frozen=True)
class Message:
    url: str
    label: str
    title: str
    body: str


# The sending process may use this much address space: Apprise reads a service's whole
# answer into memory, and a service answering an endless body must not take the board's.
CHILD_ADDRESS_SPACE_BYTES = 384 * 2**20


# The child's whole program: isolated (-I: neither the current directory nor PYTHON*
# variables choose what it imports), importing this very package from where the parent has it.
_CHILD_PROGRAM = ("import sys; sys.path.insert(0, sys.argv[1]); "
                  "from collector.notify import _child; _child(int(sys.argv[2]), float(sys.argv[3]))")


def _child_environment() -> dict[str, str]:
    """The run's environment without its own secrets (ubus passwords) and settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTAT_")}
    env["MALLOC_ARENA_MAX"] = "2"  # a few arenas, not one reserved per sending thread
    return env


def send_all(messages: list[Message], deadline: float) -> list[Sent]:
    """Send each message to its target, all at once, from a child process that has
    `deadline` seconds in all and is killed then.

    A process rather than threads: a service that hangs or floods the answer cannot hold
    the run past the deadline, nor grow its memory (the child's address space is capped).
    Nothing is left running when the run ends: the child is killed if the run is
    interrupted, dies with the run (PR_SET_PDEATHSIG) if the run is killed, and ends
    itself a second after its deadline whatever happens. It reports each outcome as it
    comes, so the ones that finished before the deadline are kept.
    """
    payload = json.dumps([dataclasses.asdict(m) for m in messages])
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen(
        [sys.executable, "-I", "-c", _CHILD_PROGRAM, package_root, str(os.getpid()), repr(deadline)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/",
        env=_child_environment(),
        start_new_session=True)  # a Ctrl-C at the terminal reaches the run, which kills it
    try:
        out, _ = child.communicate(payload.encode(), timeout=deadline)
    except subprocess.TimeoutExpired:
        child.kill()
        out, _ = child.communicate()
    except BaseException:
        child.kill()  # interrupted: nothing may be sent that the run cannot record
        child.wait()
        raise
    outcomes: dict[str, str | None] = {}
    for line in out.decode("utf-8", "replace").splitlines()[:len(messages)]:
        try:
            item = json.loads(line)
            label, error = item["label"], item["error"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(label, str) and (error is None or isinstance(error, str)):
            outcomes[label] = error
    sent = [Sent(m.label, outcomes[m.label] if m.label in outcomes else f"no answer within {deadline:g}s")
            for m in messages]
    # Apprise's log is one for the process: a reason may quote another target's failure.
    for other in messages:
        sent = [Sent(s.label, s.error if s.error is None else scrub(s.error, other.url)) for s in sent]
    return sent


def _die_with(parent: int, deadline: float) -> None:
    """End this process when the run that started it ends, and a second after the deadline."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the alarm below still ends it
    if os.getppid() != parent:  # the run ended before the line above took effect
        os._exit(1)
    signal.alarm(math.ceil(deadline) + 1)  # SIGALRM's default action ends the process


def _child(parent: int, deadline: float) -> None:
    """The sending process: the messages as JSON on stdin, one outcome per line out."""
    _die_with(parent, deadline)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = CHILD_ADDRESS_SPACE_BYTES
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))  # never above a limit set from outside
    threading.stack_size(2 * 2**20)  # not 8 MiB of address space per target
    messages = [Message(**m) for m in json.load(sys.stdin)]
    _apprise()
    lock = threading.Lock()

    def one(m: Message) -> None:
        outcome: dict = {}
        _send_now(m.url, m.title, m.body, outcome)
        with lock:
            print(json.dumps({"label": m.label, "error": outcome.get("error", "no outcome")}), flush=True)

    workers = [threading.Thread(target=one, args=(m,), daemon=True) for m in messages]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
