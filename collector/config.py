"""Loading and validating routers.json.

Two shapes are accepted: the seed's plain map `{"ROUTER": {"ap_stats": URL,
"wan_stats": URL, "dhcp_leases": URL}}`, with `//` comments and empty URLs
meaning "skip this endpoint", and `{"settings": {...}, "routers": {...}}`.
"""

from __future__ import annotations

import json
import os
import re
import stat
import unicodedata
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from collector import DEFAULT_CONFIG, DEFAULT_DATA_DIR  # noqa: F401 (re-exported)
from collector.endpoints import ENDPOINT_NAMES
from collector.errors import ConfigError
from collector.parse import normalise_mac

_SETTINGS_KEYS = {"month_start_day", "timezone", "timeout_seconds", "max_rate_mbps", "monthly_cap_gib",
                  "public_url"}
_TOP_KEYS = {"routers", "settings", "devices", "alerts"}
_DEVICE_KEYS = {"name", "owner"}
_ALERT_KEYS = {"notify_file", "thresholds_percent", "forecast", "device_limits_gib", "owner_limits_gib",
               "new_device", "router_down_minutes", "deadline_seconds"}
# A display name or owner longer than this is a mistake (a pasted file?), not a name.
LABEL_MAX_CHARS = 200
_COMMON_KEYS = {"source", "timeout", "counter_bits", "name"}
# The keys each source reads besides the common ones; a key of another source is an error.
SOURCE_KEYS = {
    "cgi": set(ENDPOINT_NAMES),
    "ubus": {"url", "username", "password_file", "wan", "dhcp", "wan_device", "tls_verify"},
    "prometheus": {"url", "wan", "wan_device", "tls_verify", "dhcp_leases"},
}
SOURCE_NAMES = tuple(SOURCE_KEYS)
_ALL_SOURCE_KEYS = set().union(*SOURCE_KEYS.values())
PASSWORD_ENV_PREFIX = "NETSTAT_UBUS_PASSWORD_"


def password_env_name(key: str) -> str:
    """The environment variable that may hold a router's ubus password: NETSTAT_UBUS_PASSWORD_
    and the key in capitals, every character other than a letter or digit made `_`."""
    return PASSWORD_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


class Secret:
    """A password: never shown by repr or str, so no log, error or dump can print it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Router:
    """One configured router. `key` (the config's map key) is its identity in the databases."""

    key: str
    name: str
    urls: dict[str, str]  # endpoint -> URL, only the endpoints that are configured
    timeout: float
    counter_bits: int
    source: str = "cgi"  # one of SOURCE_NAMES: how its endpoints are read (collector/sources.py)
    # ubus and prometheus: one URL answers several endpoints.
    url: str = ""
    username: str = ""
    password: Secret | None = None
    password_from: str = ""  # where the password was read, for messages
    wan: bool = False
    dhcp: bool = False
    wan_device: str = ""  # "" for ubus: discovered from network.interface.wan
    tls_verify: bool | str = True  # or a CA file's path


@dataclass(frozen=True)
class Settings:
    month_start_day: int = 1
    timezone: str = ""  # IANA name; "" means the system's local zone
    timeout_seconds: float = 10.0
    max_rate_mbps: float = 10000.0
    monthly_cap_gib: float | None = None  # the ISP's monthly allowance, drawn by the dashboard
    public_url: str = ""  # where users open the dashboard: alerts link to it

    def zone(self) -> zoneinfo.ZoneInfo:
        return load_zone(self.timezone)

    def monthly_cap_bytes(self) -> int | None:
        return None if self.monthly_cap_gib is None else int(self.monthly_cap_gib * 1024**3)


@dataclass(frozen=True)
class DeviceLabel:
    """What the user calls a device (`devices` in routers.json): shown instead of its hostname."""

    name: str = ""  # "" means: show the DHCP hostname
    owner: str = ""  # "" means: no owner (grouped as such, never dropped)


@dataclass(frozen=True)
class Target:
    """A notification target: its label (`mailto #1`), the only name it is known by, and its
    Apprise URL, a secret."""

    label: str
    url: Secret


@dataclass(frozen=True)
class Alerts:
    """The `alerts` section: what to tell whom, and when. Evaluated by collector/alerts.py."""

    notify_file: str = ""  # one Apprise URL per line; "" sends nothing
    targets: tuple[Target, ...] = ()  # the file's URLs: they often hold passwords or tokens
    notify_problem: str = ""  # what is wrong with notify_file (check-config and notify-test fail)
    thresholds_percent: tuple[int, ...] = (80, 100)  # of the cap, and of each limit
    forecast: bool = True  # tell when the pace says the period ends above the cap
    device_limits_bytes: tuple[tuple[str, int], ...] = ()  # (mac, bytes) per period
    owner_limits_bytes: tuple[tuple[str, int], ...] = ()  # (owner, bytes) per period
    new_device: bool = False  # a MAC never seen before appeared
    router_down_minutes: float | None = 60.0  # None: never tell about failing routers
    deadline_seconds: float = 10.0  # per target and run: a slow service never holds a run longer


@dataclass(frozen=True)
class Config:
    path: str
    settings: Settings
    routers: tuple[Router, ...]
    # Unknown keys and the like: ignored, but probably typos, so the CLI prints them.
    warnings: tuple[str, ...] = ()
    devices: dict[str, DeviceLabel] = field(default_factory=dict)  # normalised MAC -> its label
    alerts: Alerts | None = None  # None: no `alerts` section, nothing is evaluated or sent


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


# A JSON string (to its closing quote, or the end of the text if unclosed), or a `//` comment.
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"?|//[^\n]*', re.DOTALL)


def strip_comments(text: str) -> str:
    """Blank out `//` comments outside JSON strings, keeping every line and column in place.

    Keeping positions means json's own error line and column still point at the
    user's file. One regular expression rather than a loop over characters: a
    configuration naming thousands of devices is read by every run.
    """
    if "//" not in text:
        return text
    return _STRING_OR_COMMENT.sub(
        lambda m: m.group(0) if m.group(0).startswith('"') else " " * len(m.group(0)), text)


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
        # Valid JSON has no comment outside a string: only a file that does not parse is stripped.
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    try:
        if document is None:
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
    devices: dict[str, DeviceLabel] = {}
    alerts = None
    if _TOP_KEYS & document.keys():
        _warn_unknown(found, path, "top level", document.keys(), _TOP_KEYS)
        settings = _parse_settings(document.get("settings", {}), path, found)
        devices = _parse_devices(document.get("devices", {}), path)
        if "alerts" in document:
            alerts = _parse_alerts(document["alerts"], devices, path, found)
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
    return Config(path=path, settings=settings, routers=routers, warnings=tuple(found),
                  devices=devices, alerts=alerts)


def _text(path: str, where: str, value: str) -> str:
    """Text that can be stored: JSON allows a lone surrogate (`"\\ud800"`), UTF-8 does not."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(path, where, "holds a lone surrogate (\\ud800-\\udfff), which is no character") from None
    return value


def _label(path: str, where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(path, where, f"must be a string, got {json.dumps(value)}")
    value = _text(path, where, value.strip())
    if len(value) > LABEL_MAX_CHARS:
        raise _fail(path, where, f"is {len(value)} characters long; at most {LABEL_MAX_CHARS}")
    return value


def _mac_key(path: str, where: str, key: str, seen: dict[str, str]) -> str:
    """A MAC used as a key, normalised; an invalid or repeated one is an error naming the key."""
    mac = normalise_mac(key)
    if mac is None:
        raise _fail(path, f"{where}.{json.dumps(key)}", "not a MAC address (write it as aa:bb:cc:dd:ee:ff)")
    if mac in seen:
        raise _fail(path, f"{where}.{json.dumps(key)}", f"the same device as {json.dumps(seen[mac])}")
    seen[mac] = key
    return mac


def _parse_devices(doc: Any, path: str) -> dict[str, DeviceLabel]:
    """`"devices": {"aa:bb:cc:dd:ee:ff": {"name": "Anna's phone", "owner": "Anna"}}`.

    A plain string is the name alone. Unknown keys are errors here, not warnings: a
    misspelt "ownr" would silently leave a device out of its owner's total.
    """
    if not isinstance(doc, dict):
        raise _fail(path, "devices", "must be an object mapping MAC addresses to a name and owner")
    devices: dict[str, DeviceLabel] = {}
    seen: dict[str, str] = {}
    for key, value in doc.items():
        mac = _mac_key(path, "devices", key, seen)
        where = f"devices.{json.dumps(key)}"
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            raise _fail(path, where, 'must be {"name": ..., "owner": ...} or a name')
        for unknown in sorted(set(value) - _DEVICE_KEYS):
            raise _fail(path, f"{where}.{unknown}", "unknown key: a device has a name and an owner")
        devices[mac] = DeviceLabel(name=_label(path, f"{where}.name", value.get("name", "")),
                                   owner=_label(path, f"{where}.owner", value.get("owner", "")))
    return devices


def _limits(path: str, where: str, doc: Any, key_of) -> tuple[tuple[str, int], ...]:
    if not isinstance(doc, dict):
        raise _fail(path, where, "must be an object mapping each subject to its limit in GiB")
    limits = []
    for key, gib in doc.items():
        subject = key_of(key)
        gib = _number(path, f"{where}.{json.dumps(key)}", gib, lo=0.001, hi=10**9)
        limits.append((subject, int(gib * 1024**3)))
    return tuple(limits)


def _parse_alerts(doc: Any, devices: dict[str, DeviceLabel], path: str, found: list[str]) -> Alerts:
    if not isinstance(doc, dict):
        raise _fail(path, "alerts", "must be an object")
    _warn_unknown(found, path, "alerts", doc.keys(), _ALERT_KEYS)
    defaults = Alerts()
    notify_file = doc.get("notify_file", "")
    if not isinstance(notify_file, str):
        raise _fail(path, "alerts.notify_file", "must be a file's path")
    targets, notify_problem = _targets(notify_file, path, found) if notify_file else ((), "")
    thresholds = doc.get("thresholds_percent", list(defaults.thresholds_percent))
    if not isinstance(thresholds, list):
        raise _fail(path, "alerts.thresholds_percent", "must be a list of percentages such as [80, 100]")
    thresholds = tuple(sorted({_number(path, "alerts.thresholds_percent", t, lo=1, hi=1000, integer=True)
                               for t in thresholds}))
    seen: dict[str, str] = {}
    device_limits = _limits(path, "alerts.device_limits_gib", doc.get("device_limits_gib", {}),
                            lambda key: _mac_key(path, "alerts.device_limits_gib", key, seen))
    owners = {d.owner for d in devices.values() if d.owner}

    def owner_of(key: str) -> str:
        _text(path, f"alerts.owner_limits_gib.{json.dumps(key)}", key)
        if key not in owners:
            found.append(f"{path}: alerts.owner_limits_gib.{json.dumps(key)}: no device in \"devices\" "
                         "has this owner yet")
        return key

    owner_limits = _limits(path, "alerts.owner_limits_gib", doc.get("owner_limits_gib", {}), owner_of)
    down = doc.get("router_down_minutes", defaults.router_down_minutes)
    if down is not None:
        down = float(_number(path, "alerts.router_down_minutes", down, lo=1, hi=10**6))
    deadline = float(_number(path, "alerts.deadline_seconds",
                             doc.get("deadline_seconds", defaults.deadline_seconds), lo=1, hi=300))
    return Alerts(notify_file=notify_file, targets=targets, notify_problem=notify_problem,
                  thresholds_percent=thresholds,
                  forecast=_flag(path, "alerts.forecast", doc.get("forecast", defaults.forecast)),
                  device_limits_bytes=device_limits, owner_limits_bytes=owner_limits,
                  new_device=_flag(path, "alerts.new_device", doc.get("new_device", defaults.new_device)),
                  router_down_minutes=down, deadline_seconds=deadline)


def target_label(url: str, index: int) -> str:
    """How messages, logs, the ledger and the API name a target: its kind and place among
    the file's URLs (`mailto #1`). Never its host: for many services (`tgram://TOKEN/chat`)
    the host is the secret, and even a hash of the URL gives a short secret away."""
    scheme = url.split("://", 1)[0]
    if not scheme.isascii() or not scheme.replace("+", "").isalnum():
        scheme = "url"
    return f"{scheme[:16].lower()} #{index + 1}"


def _targets(notify_file: str, path: str, found: list[str]) -> tuple[tuple[Target, ...], str]:
    """The notification targets, and what is wrong with the file ("" when nothing is).

    One Apprise URL per line; blank lines and `#` comments skipped. Read with the
    configuration, kept as Secrets, never quoted in a message: they hold SMTP passwords
    and bot tokens. A file that cannot be read, a line that is no URL and a URL given
    twice are warnings here, not errors: notifications must never stop the counting
    (check-config and notify-test fail on them). Whether each URL is one Apprise
    understands is checked by check-config (collector/notify.py), which imports Apprise;
    loading the configuration does not.
    """
    where = "alerts.notify_file"
    try:
        with open(notify_file, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            text = f.read(1_000_000)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        problem = f"cannot read {notify_file}: {reason}"
        found.append(f"{path}: {where}: {problem}; alerts are recorded but not sent")
        return (), problem
    if mode & stat.S_IROTH:
        found.append(f"{path}: {where}: {notify_file} is readable by every user of this machine: "
                     f"chmod o-r {notify_file}")
    urls: list[str] = []
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cs") for ch in line) \
                or "://" not in line:
            problems.append(f"{notify_file} line {number}: not an Apprise URL (one per line, such as "
                            "mailto://user:password@example.com); skipped")
        elif line in urls:
            problems.append(f"{notify_file} line {number}: the same URL as an earlier line; skipped "
                            "(it would get every message twice)")
        else:
            urls.append(line)
    if not urls:
        problems.append(f"{notify_file} holds no URL: no alert will be sent")
    found.extend(f"{path}: {where}: {problem}" for problem in problems)
    targets = tuple(Target(target_label(url, i), Secret(url)) for i, url in enumerate(urls))
    return targets, "; ".join(problems)


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
    public_url = doc.get("public_url", "")
    if public_url:
        public_url = _url(path, "settings.public_url", public_url)
    return Settings(month_start_day=day, timezone=timezone, timeout_seconds=float(timeout),
                    max_rate_mbps=float(rate), monthly_cap_gib=cap, public_url=public_url)


def _parse_router(
    key: str, doc: Any, settings: Settings, path: str, where: str, found: list[str]
) -> Router:
    if not key.strip():
        raise _fail(path, where or '""', "router name must not be empty")
    if not isinstance(doc, dict):
        raise _fail(path, where, "must be an object with ap_stats, wan_stats and dhcp_leases URLs, "
                    "or a source and its url")
    source = doc.get("source", "cgi")
    if source not in SOURCE_KEYS:
        raise _fail(path, f"{where}.source", f"must be one of {', '.join(SOURCE_NAMES)}, "
                    f"got {json.dumps(source)}")
    allowed = _COMMON_KEYS | SOURCE_KEYS[source]
    for other in sorted((set(doc) & _ALL_SOURCE_KEYS) - allowed):
        owners = " or ".join(name for name, keys in SOURCE_KEYS.items() if other in keys)
        raise _fail(path, f"{where}.{other}", f"is a key of source {owners}; this router's source "
                    f"is {source}")
    _warn_unknown(found, path, where, doc.keys(), allowed | _ALL_SOURCE_KEYS)
    urls = {}
    for endpoint in ENDPOINT_NAMES:
        if endpoint not in allowed:
            continue
        url = doc.get(endpoint)
        if url is None or url == "":
            continue  # the seed's convention: empty means "skip this endpoint"
        urls[endpoint] = _url(path, f"{where}.{endpoint}", url)
    timeout = _number(path, f"{where}.timeout", doc.get("timeout", settings.timeout_seconds),
                      lo=0.1, hi=600)
    bits = doc.get("counter_bits", 64)
    if bits not in (32, 64) or isinstance(bits, bool):
        raise _fail(path, f"{where}.counter_bits", f"must be 32 or 64, got {json.dumps(bits)}")
    name = doc.get("name", key)
    if not isinstance(name, str) or not name.strip():
        raise _fail(path, f"{where}.name", "must be a non-empty string")
    router = Router(key=key, name=name, urls=urls, timeout=float(timeout), counter_bits=bits)
    if source == "cgi":
        return router
    return _parse_source(router, source, doc, path, where, found)


def _url(path: str, where: str, url: Any) -> str:
    if not isinstance(url, str):
        raise _fail(path, where, f"must be a URL string, got {json.dumps(url)}")
    problem = url_problem(url.strip())
    if problem:
        raise _fail(path, where, problem)
    return url.strip()


def _flag(path: str, where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, where, f"must be true or false, got {json.dumps(value)}")
    return value


def _parse_source(router: Router, source: str, doc: dict, path: str, where: str,
                  found: list[str]) -> Router:
    """The keys of a source that reads several endpoints from one URL (ubus, prometheus)."""
    if "url" not in doc:
        example = "http://192.168.1.1/ubus" if source == "ubus" else "http://192.168.1.1:9100/metrics"
        raise _fail(path, f"{where}.url", f"missing: source {source} needs its URL, such as {example}")
    url = _url(path, f"{where}.url", doc["url"])
    wan = _flag(path, f"{where}.wan", doc.get("wan", False))
    dhcp = _flag(path, f"{where}.dhcp", doc.get("dhcp", False)) if source == "ubus" else False
    wan_device = doc.get("wan_device", "")
    if not isinstance(wan_device, str) or (wan_device and not re.fullmatch(r"[A-Za-z0-9_.@:-]{1,64}",
                                                                          wan_device)):
        raise _fail(path, f"{where}.wan_device", "must be a network device name such as \"pppoe-wan\"")
    if source == "prometheus" and wan and not wan_device:
        raise _fail(path, f"{where}.wan_device", "missing: the exporter cannot say which device is "
                    "the WAN; name it (for example \"pppoe-wan\" or \"eth1\")")
    tls_verify = doc.get("tls_verify", True)
    if isinstance(tls_verify, str):
        if not os.path.isfile(tls_verify):
            raise _fail(path, f"{where}.tls_verify", f"CA file {tls_verify} not found")
    elif not isinstance(tls_verify, bool):
        raise _fail(path, f"{where}.tls_verify", "must be true, false or a CA file's path")
    username, password, password_from = "", None, ""
    if source == "ubus":
        username = doc.get("username")
        if not isinstance(username, str) or not username:
            raise _fail(path, f"{where}.username", "missing: the rpcd login to use (see router/README.md)")
        password, password_from = _password(router.key, doc.get("password_file"), path, where, found)
    return Router(key=router.key, name=router.name, urls=router.urls, timeout=router.timeout,
                  counter_bits=router.counter_bits, source=source, url=url, username=username,
                  password=password, password_from=password_from, wan=wan, dhcp=dhcp,
                  wan_device=wan_device, tls_verify=tls_verify)


def _password(key: str, password_file: Any, path: str, where: str,
              found: list[str]) -> tuple[Secret, str]:
    """The ubus password from password_file, else from NETSTAT_UBUS_PASSWORD_<KEY>.

    Its first line is the password. Never quoted in any message.
    """
    variable = password_env_name(key)
    if password_file is None:
        value = os.environ.get(variable)
        if value is None:
            raise _fail(path, f"{where}.password_file", f"missing: put the password in a file named "
                        f"here, or in the environment variable {variable}")
        origin = f"environment variable {variable}"
    else:
        if not isinstance(password_file, str) or not password_file:
            raise _fail(path, f"{where}.password_file", "must be a file's path")
        try:
            with open(password_file, encoding="utf-8") as f:
                value = f.readline()
                mode = os.fstat(f.fileno()).st_mode
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            raise _fail(path, f"{where}.password_file", f"cannot read {password_file}: {reason}") from None
        if mode & stat.S_IROTH:
            found.append(f"{path}: {where}.password_file: {password_file} is readable by every user "
                         f"of this machine: chmod o-r {password_file}")
        origin = f"file {password_file}"
    value = value.rstrip("\r\n")
    if not value:
        raise _fail(path, f"{where}.password_file", f"the password in {origin} is empty")
    return Secret(value), origin
