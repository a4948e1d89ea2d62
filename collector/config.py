"""Loading and validating routers.json.

Two shapes are accepted: the seed's plain map `{"ROUTER": {"ap_stats": URL,
"wan_stats": URL, "dhcp_leases": URL}}`, with `//` comments and empty URLs
meaning "skip this endpoint", and `{"settings": {...}, "routers": {...}}`.
"""

from __future__ import annotations

import json
import os
import unicodedata
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collector import DEFAULT_CONFIG, DEFAULT_DATA_DIR  # noqa: F401 (re-exported)
from collector.endpoints import ENDPOINT_NAMES
from collector.errors import ConfigError

_SETTINGS_KEYS = {"month_start_day", "timezone", "timeout_seconds", "max_rate_mbps", "monthly_cap_gib"}
_ROUTER_KEYS = set(ENDPOINT_NAMES) | {"timeout", "counter_bits", "name"}


@dataclass(frozen=True)
class Router:
    """One configured router. `key` (the config's map key) is its identity in the databases."""

    key: str
    name: str
    urls: dict[str, str]  # endpoint -> URL, only the endpoints that are configured
    timeout: float
    counter_bits: int


@dataclass(frozen=True)
class Settings:
    month_start_day: int = 1
    timezone: str = ""  # IANA name; "" means the system's local zone
    timeout_seconds: float = 10.0
    max_rate_mbps: float = 10000.0
    monthly_cap_gib: float | None = None  # the ISP's monthly allowance, drawn by the dashboard

    def zone(self) -> zoneinfo.ZoneInfo:
        return load_zone(self.timezone)

    def monthly_cap_bytes(self) -> int | None:
        return None if self.monthly_cap_gib is None else int(self.monthly_cap_gib * 1024**3)


@dataclass(frozen=True)
class Config:
    path: str
    settings: Settings
    routers: tuple[Router, ...]
    # Unknown keys and the like: ignored, but probably typos, so the CLI prints them.
    warnings: tuple[str, ...] = ()


def url_problem(url: str) -> str | None:
    """What makes `url` unusable as an endpoint URL, or None.

    Never quotes the URL: it may carry a password (`http://user:password@host/...`),
    and where it does not parse, no one can say which part is the password.
    """
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        return "not a valid URL: it contains spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError as e:
        if str(e) == "Invalid IPv6 URL":
            return "not a valid URL: unbalanced [ ] around an IPv6 address"
        return "not a valid URL: its host is not valid"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL with a host"
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        return "not a valid URL: the port must be a number from 1 to 65535"
    return None


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """The named IANA zone, or the system's local zone when name is empty.

    The local zone comes from TZ or /etc/localtime as a real zone, not a fixed
    offset, so billing periods stay right across daylight-saving changes.
    """
    if name:
        return zoneinfo.ZoneInfo(name)
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        try:
            return zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    # /etc/localtime is usually a link into the zoneinfo tree: that gives the
    # zone a name that can be stored and shown.
    target = os.path.realpath("/etc/localtime")
    if "/zoneinfo/" in target:
        try:
            return zoneinfo.ZoneInfo(target.split("/zoneinfo/", 1)[1])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="localtime")
    except OSError:
        return zoneinfo.ZoneInfo("UTC")


def strip_comments(text: str) -> str:
    """Blank out `//` comments outside JSON strings, keeping every line and column in place.

    Keeping positions means json's own error line and column still point at the
    user's file.
    """
    out = []
    in_string = escaped = in_comment = False
    for ch in text:
        if in_comment:
            if ch == "\n":
                in_comment = False
                out.append(ch)
            else:
                out.append(" ")
            continue
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            out.append(ch)
            continue
        if ch == '"':
            in_string = True
        elif ch == "/" and out and out[-1] == "/":
            out[-1] = " "
            in_comment = True
            out.append(" ")
            continue
        out.append(ch)
    return "".join(out)


def load_config(path: str | os.PathLike) -> Config:
    """Read, parse and validate the config file; raise ConfigError saying what and where."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read configuration: {e}") from None
    try:
        document = json.loads(strip_comments(text))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: line {e.lineno} column {e.colno}: invalid JSON: {e.msg}") from None
    return parse_config(document, path)


def _fail(path: str, where: str, what: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {what}")


def _warn_unknown(found: list[str], path: str, where: str, keys, allowed: set[str]) -> None:
    for key in sorted(set(keys) - allowed):
        found.append(f"{path}: {where}: unknown key {key!r} ignored")


def _number(path, where, value, *, lo, hi, integer=False):
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise _fail(path, where, f"must be {kind} from {lo} to {hi}, got {json.dumps(value)}")
    return value


def parse_config(document: Any, path: str = "<config>") -> Config:
    if not isinstance(document, dict):
        raise _fail(path, "top level", "must be a JSON object")
    found: list[str] = []
    if "routers" in document or "settings" in document:
        _warn_unknown(found, path, "top level", document.keys(), {"routers", "settings"})
        settings = _parse_settings(document.get("settings", {}), path, found)
        routers_doc = document.get("routers", {})
        prefix = "routers"
    else:
        settings = Settings()
        routers_doc = document
        prefix = ""
    if not isinstance(routers_doc, dict):
        raise _fail(path, "routers", "must be an object mapping router names to their URLs")
    routers = tuple(
        _parse_router(key, value, settings, path, f"{prefix}.{key}" if prefix else key, found)
        for key, value in routers_doc.items()
    )
    if not routers:
        raise _fail(path, prefix or "top level", "no routers configured")
    return Config(path=path, settings=settings, routers=routers, warnings=tuple(found))


def _parse_settings(doc: Any, path: str, found: list[str]) -> Settings:
    if not isinstance(doc, dict):
        raise _fail(path, "settings", "must be an object")
    _warn_unknown(found, path, "settings", doc.keys(), _SETTINGS_KEYS)
    defaults = Settings()
    day = _number(path, "settings.month_start_day", doc.get("month_start_day", 1),
                  lo=1, hi=28, integer=True)
    timezone = doc.get("timezone", "")
    if not isinstance(timezone, str):
        raise _fail(path, "settings.timezone", "must be an IANA zone name such as \"Europe/Berlin\"")
    if timezone:
        try:
            load_zone(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise _fail(path, "settings.timezone", f"unknown time zone {timezone!r}") from None
    timeout = _number(path, "settings.timeout_seconds",
                      doc.get("timeout_seconds", defaults.timeout_seconds), lo=0.1, hi=600)
    rate = _number(path, "settings.max_rate_mbps",
                   doc.get("max_rate_mbps", defaults.max_rate_mbps), lo=1, hi=10_000_000)
    cap = doc.get("monthly_cap_gib")
    if cap is not None:
        cap = float(_number(path, "settings.monthly_cap_gib", cap, lo=0.001, hi=10**9))
    return Settings(month_start_day=day, timezone=timezone, timeout_seconds=float(timeout),
                    max_rate_mbps=float(rate), monthly_cap_gib=cap)


def _parse_router(
    key: str, doc: Any, settings: Settings, path: str, where: str, found: list[str]
) -> Router:
    if not key.strip():
        raise _fail(path, where or '""', "router name must not be empty")
    if not isinstance(doc, dict):
        raise _fail(path, where, "must be an object with ap_stats, wan_stats and dhcp_leases URLs")
    _warn_unknown(found, path, where, doc.keys(), _ROUTER_KEYS)
    urls = {}
    for endpoint in ENDPOINT_NAMES:
        url = doc.get(endpoint)
        if url is None or url == "":
            continue  # the seed's convention: empty means "skip this endpoint"
        if not isinstance(url, str):
            raise _fail(path, f"{where}.{endpoint}", f"must be a URL string, got {json.dumps(url)}")
        problem = url_problem(url.strip())
        if problem:
            raise _fail(path, f"{where}.{endpoint}", problem)
        urls[endpoint] = url.strip()
    timeout = _number(path, f"{where}.timeout", doc.get("timeout", settings.timeout_seconds),
                      lo=0.1, hi=600)
    bits = doc.get("counter_bits", 64)
    if bits not in (32, 64) or isinstance(bits, bool):
        raise _fail(path, f"{where}.counter_bits", f"must be 32 or 64, got {json.dumps(bits)}")
    name = doc.get("name", key)
    if not isinstance(name, str) or not name.strip():
        raise _fail(path, f"{where}.name", "must be a non-empty string")
    return Router(key=key, name=name, urls=urls, timeout=float(timeout), counter_bits=bits)
