"""Which `Host` headers the app answers: the defence against DNS rebinding.

A page on another site can have the visitor's browser resolve its own name to the
board's LAN address, and then read the API as if it were that site's own. The
browser still sends that site's name in `Host`, so only names meant for this
machine are served; any other `Host` gets a 400. IP literals (which cannot be
rebound), `localhost` and the machine's own names (socket.gethostname() and
socket.getfqdn()) are always served; other names, such as a DNS name for the board
or `board.local`, only when configured (NETSTAT_ALLOWED_HOSTS). A configured name
with a leading dot (`.home.arpa`) also covers every name under it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

_NAME = re.compile(r"\.?[a-z0-9-]+(\.[a-z0-9-]+)*")


def _normal(name: str) -> str:
    return name.strip().lower().removesuffix(".")


def configured_names(entries: str | Iterable[str], source: str) -> tuple[str, ...]:
    """The names of a setting (comma-separated text, or a list); ValueError naming a bad one."""
    if isinstance(entries, str):
        entries = entries.split(",")
    names = []
    for entry in entries:
        name = _normal(entry)
        if not entry.strip():
            continue
        if not _NAME.fullmatch(name):
            raise ValueError(f"{source}: not a host name: {entry.strip()!r} (names separated by "
                             f"commas, such as board.lan or .home.arpa for every name under it)")
        names.append(name)
    return tuple(names)


def own_names() -> set[str]:
    """localhost and the names this machine gives itself."""
    return {_normal(n) for n in ("localhost", socket.gethostname(), socket.getfqdn()) if n}


@dataclass(frozen=True)
class HostPolicy:
    names: frozenset[str]  # exact names
    domains: tuple[str, ...]  # from `.domain`: the domain and every name under it

    @classmethod
    def build(cls, configured: Iterable[str]) -> HostPolicy:
        configured = tuple(configured)
        return cls(frozenset(own_names() | {n for n in configured if not n.startswith(".")}),
                   tuple(n[1:] for n in configured if n.startswith(".")))

    def allows(self, host: str) -> bool:
        """`host` as Werkzeug validated it (`name[:port]`, `[v6][:port]`; "" when invalid)."""
        if host.startswith("["):
            address = host[1:].partition("]")[0]
            try:
                ipaddress.IPv6Address(address)
                return True
            except ValueError:
                return False
        name = host.rpartition(":")[0] if ":" in host else host
        try:
            ipaddress.IPv4Address(name)
            return True
        except ValueError:
            pass
        name = _normal(name)
        if not name:
            return False
        return name in self.names or any(name == d or name.endswith("." + d) for d in self.domains)
