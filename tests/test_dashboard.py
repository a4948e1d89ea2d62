"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright.

It runs against a real gunicorn over databases the real collector wrote from
simulated routers on 127.0.0.1: three weeks of daily runs across a month change
(November is a past period, December the current one), a monthly cap, a router
whose last poll failed, devices whose DHCP hostnames are hostile markup or carry
quotes and right-to-left controls, and a configuration naming devices and their owners,
some with hostile markup, terminal escapes or 200 characters.

Chromium and Playwright are required, not optional: without them these tests fail
and say what to install (CI installs both). The browser is started so that it
reaches nothing but the test server (no background networking, no proxy, host names
never resolve), and every test checks it asked for nothing else.
"""

from __future__ import annotations

import os
import random
import re
import struct
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support import REPO, ApiServer, collect, gunicorn_server, stored_usage, write_config

from api.app import SECURITY_HEADERS
from collector.report import human_bytes as human  # the binary units the page uses too
from collector.sim.routers import Fleet

# A real browser against a real gunicorn: the long tier (README, "Tests").
pytestmark = pytest.mark.slow

UTC = timezone.utc  # datetime.UTC is Python 3.11+

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "docs" / "dashboard.png"
# Everything Chromium would fetch from the internet by itself, switched off; names never
# resolve (the tests use 127.0.0.1, which needs no resolving) and no proxy is used.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 15_000

# The devices. Hostnames come from DHCP: whoever joins the network picks their own.
TV = "aa:00:00:00:00:01"
LAPTOP = "aa:00:00:00:00:02"
HOSTILE = "aa:00:00:00:00:03"
QUOTED = "aa:00:00:00:00:04"
PRINTER = "aa:00:00:00:00:05"     # a lease without a hostname
WORK = "aa:00:00:00:00:06"        # on ap-3, whose last poll fails
TABLET = "aa:00:00:00:00:07"      # on ap-2, which serves no DHCP: no lease, no name
XSS = "<img src=x onerror=alert(1)>"
QUOTES = "Bob's \"phone\" \u202egnp.exe\u200f"  # RIGHT-TO-LEFT OVERRIDE, RIGHT-TO-LEFT MARK
NAMES = {TV: "living-room-tv", LAPTOP: "laptop", HOSTILE: XSS, QUOTED: QUOTES, PRINTER: "",
         WORK: "work-laptop"}
IPS = {TV: "10.0.0.20", LAPTOP: "10.0.0.11", HOSTILE: "10.0.0.31", QUOTED: "10.0.0.32",
       PRINTER: "10.0.0.9", WORK: "10.0.0.40"}
# Names and owners from the configuration: pasted from anywhere, so just as hostile.
XSS_NAME = "<img src=x onerror=alert(2)>"
ESCAPES = "\x1b[31mBen\x1b[0m"
MARKUP_OWNER = "<b>Zo\u00eb</b>"
LONG = "W" * 199 + "!"  # the longest name the configuration takes
DEVICES = {TV: {"name": "Living room TV", "owner": "Family"},
           LAPTOP: {"name": "Anna's laptop", "owner": "Anna"},
           WORK: {"name": LONG, "owner": "Anna"},
           PRINTER: {"name": XSS_NAME, "owner": ESCAPES},
           TABLET: {"owner": MARKUP_OWNER}}
CAP_GIB = 500
GiB = 1024**3
MiB = 1024**2
FIRST_CONTACT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAYS = 20  # daily runs at 12:00 from 21 November to 10 December


@dataclass
class Site:
    server: ApiServer
    data_dir: Path
    # period label -> device -> [upload, download] as the simulation moved them;
    # for main_wan [rx, tx], i.e. [download, upload]
    moved: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, path: str, **params) -> dict:
        r = self.server.get(path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()


def _build(fleet: Fleet, base: Path) -> tuple[Path, dict]:
    """Collect once a day from 20 November to 10 December 2026 (UTC), 12:00 each time."""
    data_dir = base / "data"
    fleet.add_router("router-1")
    fleet.add_router("ap-2", wan=False, dhcp=False)
    fleet.add_router("ap-3", wan=False, dhcp=False)
    for mac, name in NAMES.items():
        fleet.join("router-1", mac, hostname=name, ip=IPS[mac])
    fleet.roam(WORK, "router-1", "ap-3")  # its lease stays with router-1's DHCP server
    fleet.join("ap-2", TABLET)
    config = write_config(base / "routers.json", {
        **fleet.config(settings={"timezone": "UTC", "monthly_cap_gib": CAP_GIB}), "devices": DEVICES})
    rng = random.Random(20261210)
    # device: (access point, lowest and highest download per day, download / upload)
    profiles = {TV: ("router-1", 5 * GiB, 9 * GiB, 40), LAPTOP: ("router-1", 1536 * MiB, 3 * GiB, 6),
                HOSTILE: ("router-1", 400 * MiB, 1200 * MiB, 10),
                QUOTED: ("router-1", 150 * MiB, 500 * MiB, 8),
                PRINTER: ("router-1", 300_000, 900_000, 0.25),
                WORK: ("ap-3", 800 * MiB, 2 * GiB, 4), TABLET: ("ap-2", 300 * MiB, 900 * MiB, 12)}
    moved: dict[str, dict[str, list[int]]] = {}
    assert collect(fleet, config, data_dir).code == 0  # first contact: baselines only
    for day in range(1, DAYS + 1):
        label = (FIRST_CONTACT + timedelta(days=day)).strftime("%Y-%m")
        ledger = moved.setdefault(label, {})
        last = day == DAYS
        for mac, (router, low, high, ratio) in profiles.items():
            if last and router == "ap-3":
                continue  # ap-3 is down on the last day: nothing moves through it
            download = rng.randint(low, high)
            upload = int(download / ratio)
            fleet.transfer(router, mac, upload, download, wan_router="router-1")
            entry = ledger.setdefault(mac, [0, 0])
            entry[0] += upload
            entry[1] += download
            wan = ledger.setdefault("main_wan", [0, 0])
            wan[0] += download
            wan[1] += upload
        # A wired NAS behind router-1: WAN traffic that no access point sees.
        rx, tx = rng.randint(500 * MiB, 1500 * MiB), rng.randint(2 * GiB, 4 * GiB)
        fleet.wan_transfer("router-1", rx, tx)
        ledger["main_wan"][0] += rx
        ledger["main_wan"][1] += tx
        fleet.advance(86400)
        if last:
            fleet.set_fault("ap-3", "http500")
        result = collect(fleet, config, data_dir)
        assert result.code == (1 if last else 0), result.stderr
    return data_dir, moved


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("dashboard")
    with Fleet(now=FIRST_CONTACT.timestamp()) as fleet:
        data_dir, moved = _build(fleet, base)
        now = fleet.now
    with gunicorn_server(data_dir, base / "gunicorn.log", now=now) as server:
        yield Site(server, data_dir, moved)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is not installed: the dashboard tests need it "
                    "(pip install '.[test]'; never `playwright install`: they use Debian's "
                    "Chromium)", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the dashboard tests drive Debian's Chromium "
                    "(apt-get install chromium)", pytrace=False)
    args = CHROMIUM_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watch:
    """What the page did besides rendering: console errors, dialogs, requests elsewhere."""

    origin: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    requests: list = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

        def dialog(d) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", dialog)
        page.on("request", self._request)

    def _request(self, request) -> None:
        self.requests.append(request)
        if not request.url.startswith(self.origin + "/"):
            self.elsewhere.append(request.url)

    def assert_quiet(self) -> None:
        assert self.errors == [], "the page logged errors"
        assert self.dialogs == [], "a dialog opened: a script from the data ran"
        assert self.elsewhere == [], "the page asked for something outside the server"


def _open(browser, site: Site, viewport: dict = DESKTOP, **options):
    context = browser.new_context(viewport=viewport, color_scheme="light", locale="en-US",
                                  timezone_id="UTC", service_workers="block", **options)
    page = context.new_page()
    watch = Watch(site.url)
    watch.attach(page)
    return context, page, watch


@pytest.fixture
def dashboard(browser, site):
    """The page loaded at 1280x900; the test fails if it logged errors or looked elsewhere."""
    context, page, watch = _open(browser, site)
    response = page.goto(site.url + "/")
    assert response is not None and response.status == 200
    ready(page)
    yield page, watch, response
    try:
        watch.assert_quiet()
    finally:
        context.close()


def ready(page, **data) -> None:
    """Wait until the page has drawn its answers (for a period or device, if given)."""
    selector = "body[data-state=ready]" + "".join(f'[data-{k}="{v}"]' for k, v in data.items())
    page.wait_for_selector(selector, state="attached", timeout=WAIT_MS)


def exact(title: str) -> int:
    """`157,286,400 bytes` -> 157286400 (the exact count the page shows on hover)."""
    found = re.fullmatch(r"(\d{1,3}(?:,\d{3})*) bytes", title)
    assert found, f"not an exact byte count: {title!r}"
    return int(found.group(1).replace(",", ""))


def share(part: int, whole: int) -> str:
    value = 100 * part / whole
    return "< 0.1 %" if 0 < value < 0.1 else f"{value:.1f} %"


ROWS_JS = """() => [...document.querySelectorAll('#devices tbody tr[data-mac]')].map(tr => ({
    mac: tr.dataset.mac,
    label: (tr.querySelector('.col-name button bdi') || {textContent: null}).textContent,
    name_text: tr.querySelector('.col-name button').textContent,
    host: tr.querySelector('.col-name .host') ? tr.querySelector('.col-name .host').textContent : null,
    owner: tr.querySelector('.col-owner').textContent,
    ip: tr.querySelector('.col-ip').textContent,
    mac_text: tr.querySelector('.col-mac').textContent,
    download: [tr.querySelector('.dl-col').textContent, tr.querySelector('.dl-col').title],
    upload: [tr.querySelector('.ul-col').textContent, tr.querySelector('.ul-col').title],
    total: [tr.querySelector('.total-col').textContent, tr.querySelector('.total-col').title],
    share: tr.querySelector('.share-text').textContent,
}))"""


def rows(page) -> list[dict]:
    return page.evaluate(ROWS_JS)


def hidden(text: str) -> bool:
    """Whether text holds invisible or direction-changing characters (the page flags them)."""
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


OWNERS_JS = """() => [...document.querySelectorAll('#owners tbody tr')].map(tr => ({
    owner: tr.querySelector('th .owner-name').textContent,
    devices: tr.querySelector('.col-devices').textContent,
    bytes: ['.dl-col', '.ul-col', '.total-col'].map(c => tr.querySelector(c).title),
    picked: tr.classList.contains('picked'),
}))"""


def bars(page, chart: str) -> list[dict]:
    return page.evaluate("""(id) => [...document.querySelectorAll('#' + id + ' g.day')].map(g => ({
        day: g.dataset.day, title: g.querySelector('title').textContent }))""", chart)


def bar_bytes(title: str) -> tuple[int, int]:
    found = re.search(r"download ([\d,]+) bytes\nupload ([\d,]+) bytes$", title)
    assert found, title
    return int(found.group(1).replace(",", "")), int(found.group(2).replace(",", ""))


def shown(page, selector: str) -> tuple[str, int]:
    node = page.locator(selector)
    return node.text_content(), exact(node.get_attribute("title"))


# --- Headers ---------------------------------------------------------------------------------


def test_the_page_and_its_assets_carry_the_security_headers(site):
    for path, kind in [("/", "text/html"), ("/static/dashboard.js", "text/javascript"),
                       ("/static/dashboard.css", "text/css"), ("/static/favicon.svg", "image/svg+xml")]:
        r = site.server.get(path)
        served = r.headers["Content-Type"].split(";")[0]
        # nosniff: a script must be served as one (older systems' mime.types say application/).
        served = served.replace("application/javascript", "text/javascript")
        assert (r.status_code, served) == (200, kind), path
        assert {k: r.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, path
        assert r.headers["Cache-Control"] == "no-cache", path
        again = site.server.get(path, headers={"If-None-Match": r.headers["ETag"]})
        assert again.status_code == 304, path
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


def test_json_answers_get_nosniff_too(site):
    for path in ["/api/v1/usage", "/api/v1/", "/healthz", "/api.php?action=wan", "/api/v1/nothing"]:
        r = site.server.get(path)
        assert r.headers["Content-Type"] == "application/json", path
        assert (r.headers["X-Content-Type-Options"], r.headers["X-Frame-Options"]) == ("nosniff", "DENY")


def test_the_page_has_no_inline_script_or_style(site):
    html = site.server.get("/").text
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="static/dashboard.js" defer>']
    assert "<style" not in html and re.findall(r"<[^>]*\s(?:style|on\w+)\s*=", html) == []
    # Nothing from another origin: every URL in the page is relative to it.
    assert re.findall(r'(?:src|href)="([^"]*)"', html) == [
        "static/favicon.svg", "static/dashboard.css", "static/dashboard.js", "api/v1/",
        "api/v1/openapi.json"]


# --- What the page shows ------------------------------------------------------------------------


def test_the_browser_gets_the_csp_and_loads_only_from_the_server(dashboard, site):
    page, watch, response = dashboard
    assert response.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    loaded = {r.url.removeprefix(site.url) for r in watch.requests}
    assert {"/", "/static/dashboard.js", "/static/dashboard.css", "/api/v1/periods",
            "/api/v1/routers", "/healthz", "/api/v1/usage?period=2026-12",
            "/api/v1/owners?period=2026-12"} <= loaded
    watch.assert_quiet()


def test_wan_totals_and_cap_equal_the_api(dashboard, site):
    page, watch, _ = dashboard
    wan = site.api("/api/v1/usage")["wan"]
    assert wan["cap_bytes"] == CAP_GIB * GiB
    assert shown(page, "#wan-download") == (human(wan["download_bytes"]), wan["download_bytes"])
    assert shown(page, "#wan-upload") == (human(wan["upload_bytes"]), wan["upload_bytes"])
    assert shown(page, "#wan-total") == (human(wan["total_bytes"]), wan["total_bytes"])
    assert shown(page, "#cap") == ("500.00 GiB", CAP_GIB * GiB)
    used = 100 * wan["total_bytes"] / wan["cap_bytes"]
    assert page.text_content("#cap-text").startswith(f"{used:.1f} % of the cap used · ")
    assert page.is_visible("#cap-bar") and page.is_visible("#cap-elapsed")
    # December's pace is measured from the run before its first (30 Nov 12:00: December's
    # first deltas were moved since then) to the last (10 Dec 12:00): the collector's forecast
    # is drawn as it says.
    assert wan["forecast_bytes"] is not None and "last 10.0 days" in wan["forecast_note"]
    assert page.text_content("#cap-forecast") == human(wan["forecast_bytes"])
    assert wan["forecast_note"] in page.get_attribute("#cap-forecast", "title")
    assert "at this pace" in page.text_content("#cap-text")
    above = wan["forecast_bytes"] > wan["cap_bytes"]
    assert ("over" in (page.get_attribute("#cap-forecast", "class") or "").split()) == above
    color = page.eval_on_selector("#cap-forecast", "e => getComputedStyle(e).color")
    muted = page.eval_on_selector("#cap-text", "e => getComputedStyle(e).color")
    assert (color != muted) == above  # a forecast above the cap stands out


def test_wan_download_is_what_the_wan_received(dashboard, site):
    """Direction: the WAN's download is its rx, straight from the collector's table."""
    page, _, _ = dashboard
    rx, tx = stored_usage(site.data_dir, "2026-12")["main_wan"]
    assert rx > tx  # the scenario downloads more than it uploads: a swap would show
    assert (shown(page, "#wan-download")[1], shown(page, "#wan-upload")[1]) == (rx, tx)
    assert [rx, tx] == site.moved["2026-12"]["main_wan"]


def test_the_device_table_equals_the_api(dashboard, site):
    page, _, _ = dashboard
    clients = site.api("/api/v1/usage")["clients"]
    everything = sum(c["total_bytes"] for c in clients)
    expected = []
    for c in clients:  # the API's order: biggest total first, as the page starts
        label = c["name"] if c["name"] is not None else c["hostname"]  # the name, else the hostname
        expected.append({
            "mac": c["mac"], "label": label,
            "name_text": "(no name)" if label is None else label + ("\u26a0" if hidden(label) else ""),
            # The DHCP hostname beside a configured name.
            "host": c["hostname"] if c["name"] is not None and c["hostname"] is not None else None,
            "owner": "–" if c["owner"] is None else c["owner"] + ("\u26a0" if hidden(c["owner"]) else ""),
            "ip": c["ip"] or "–", "mac_text": c["mac"],
        "download": [human(c["download_bytes"]), f"{c['download_bytes']:,} bytes"],
        "upload": [human(c["upload_bytes"]), f"{c['upload_bytes']:,} bytes"],
            "total": [human(c["total_bytes"]), f"{c['total_bytes']:,} bytes"],
            "share": share(c["total_bytes"], everything),
        })
    assert rows(page) == expected
    assert len(expected) == 7
    # What the configuration says, as the API passes it on.
    assert {c["mac"]: (c["name"], c["owner"]) for c in clients} == {
        mac: (DEVICES.get(mac, {}).get("name"), DEVICES.get(mac, {}).get("owner")) for mac in [*IPS, TABLET]}
    assert page.text_content("#count") == "7 devices"
    foot = page.locator("#devices tfoot td.num").all()
    assert [exact(td.get_attribute("title")) for td in foot[:3]] == [
        sum(c[k] for c in clients) for k in ("download_bytes", "upload_bytes", "total_bytes")]


def test_device_download_is_what_the_access_point_sent(dashboard, site):
    """Direction: a device's download is the access point's tx, its upload the AP's rx."""
    page, _, _ = dashboard
    stored = stored_usage(site.data_dir, "2026-12")
    for row in rows(page):
        rx, tx = stored[row["mac"]]
        assert (exact(row["download"][1]), exact(row["upload"][1])) == (tx, rx), row["mac"]
        upload, download = site.moved["2026-12"][row["mac"]]
        assert (exact(row["download"][1]), exact(row["upload"][1])) == (download, upload)
    labels = page.eval_on_selector_all("#devices thead th button", "bs => bs.map(b => b.textContent)")
    assert labels == ["Device", "Owner", "IP", "MAC", "Download", "Upload", "Total", "Share"]


def test_sorting_by_a_column_header(dashboard):
    page, _, _ = dashboard

    def column(name: str) -> list:
        return [exact(r[name][1]) for r in rows(page)]

    page.click("#devices th[data-key=download_bytes] button")
    downloads = column("download")
    assert downloads == sorted(downloads, reverse=True) and len(set(downloads)) == 7
    assert page.get_attribute("#devices th[data-key=download_bytes]", "aria-sort") == "descending"
    page.click("#devices th[data-key=download_bytes] button")
    assert column("download") == sorted(downloads)
    assert page.get_attribute("#devices th[data-key=download_bytes]", "aria-sort") == "ascending"
    page.click("#devices th[data-key=upload_bytes] button")
    uploads = column("upload")
    assert uploads == sorted(uploads, reverse=True) and uploads != column("total")
    page.click("#devices th[data-key=label] button")
    names = [r["label"] for r in rows(page)]
    assert names[-1:] == [None]  # nameless devices last: the tablet has neither name nor hostname
    assert names[:6] == sorted(names[:6], key=str.casefold)
    page.click("#devices th[data-key=owner] button")
    owners = [r["owner"].rstrip("\u26a0") for r in rows(page)]
    assert owners[-2:] == ["–", "–"]  # devices without an owner last
    assert owners[:5] == sorted(owners[:5], key=str.casefold)
    page.click("#devices th[data-key=ip] button")
    assert [r["ip"] for r in rows(page)] == ["10.0.0.9", "10.0.0.11", "10.0.0.20", "10.0.0.31",
                                              "10.0.0.32", "10.0.0.40", "–"]


def test_filtering_the_table(dashboard):
    page, _, _ = dashboard
    page.fill("#filter", "LAPTOP")
    assert sorted(r["mac"] for r in rows(page)) == [LAPTOP, WORK]
    assert page.text_content("#count") == "2 of 7 devices"
    page.fill("#filter", "10.0.0.3")
    assert sorted(r["mac"] for r in rows(page)) == [HOSTILE, QUOTED]
    page.fill("#filter", ":07")
    assert [r["mac"] for r in rows(page)] == [TABLET]
    page.fill("#filter", "no such device")
    assert rows(page) == [] and page.text_content("#devices tbody") == "No device matches the filter."
    page.fill("#filter", "")
    assert len(rows(page)) == 7


def test_the_wan_chart_is_the_daily_history(dashboard, site):
    page, _, _ = dashboard
    history = site.api("/api/v1/wan/history", granularity="day", **{"from": "2026-12-01"})
    assert [p["label"] for p in history["points"]] == [f"2026-12-{d:02d}" for d in range(1, 11)]
    drawn = bars(page, "wan-chart")
    assert [b["day"] for b in drawn] == [p["label"] for p in history["points"]]
    assert [bar_bytes(b["title"]) for b in drawn] == [
        (p["download_bytes"], p["upload_bytes"]) for p in history["points"]]
    assert exact(page.get_attribute("#wan-readout", "title").split(", upload ")[0]
                 .removeprefix("download ")) == history["total"]["download_bytes"]


def test_picking_a_device_draws_its_daily_chart(dashboard, site):
    page, _, _ = dashboard
    page.click(f"#devices tr[data-mac='{LAPTOP}'] button.name")
    ready(page, device=LAPTOP)
    # Titled by the configured name, the DHCP hostname beside it.
    assert page.text_content("#device-chart-title") == "Anna's laptop (laptop) per day"
    assert page.get_attribute(f"#devices tr[data-mac='{LAPTOP}']", "class") == "picked"
    history = site.api(f"/api/v1/clients/{LAPTOP}/history", granularity="day", **{"from": "2026-12-01"})
    drawn = bars(page, "device-chart")
    assert [(b["day"], *bar_bytes(b["title"])) for b in drawn] == [
        (p["label"], p["download_bytes"], p["upload_bytes"]) for p in history["points"]]
    # Its downloads are the access point's tx.
    rx, tx = stored_usage(site.data_dir, "2026-12")[LAPTOP]
    assert [sum(column) for column in zip(*(bar_bytes(b["title"]) for b in drawn), strict=True)] == [tx, rx]
    # Hovering a bar shows that day.
    page.hover("#device-chart g.day[data-day='2026-12-03']")
    assert page.text_content("#device-readout").startswith("Thu 3 Dec 2026: download ")


def test_the_period_picker_shows_a_past_period(dashboard, site):
    page, _, _ = dashboard
    options = page.eval_on_selector_all("#period option", "os => os.map(o => [o.value, o.textContent])")
    assert options == [["2026-12", "1 Dec – 31 Dec 2026 (current)"], ["2026-11", "1 Nov – 30 Nov 2026"]]
    page.select_option("#period", "2026-11")
    ready(page, period="2026-11")
    usage = site.api("/api/v1/usage", period="2026-11")
    assert shown(page, "#wan-download")[1] == usage["wan"]["download_bytes"]
    assert shown(page, "#wan-upload")[1] == usage["wan"]["upload_bytes"]
    assert usage["wan"]["download_bytes"] == site.moved["2026-11"]["main_wan"][0]
    assert [(r["mac"], exact(r["download"][1]), exact(r["upload"][1])) for r in rows(page)] == [
        (c["mac"], c["download_bytes"], c["upload_bytes"]) for c in usage["clients"]]
    assert page.text_content("#range") == "1 Nov – 30 Nov 2026 · past period"
    assert not page.is_visible("#cap-elapsed")  # the pace marker is for the current period
    drawn = bars(page, "wan-chart")
    history = site.api("/api/v1/wan/history", granularity="day", **{"from": "2026-11-01", "to": "2026-11-30"})
    assert len(drawn) == 30
    assert [bar_bytes(b["title"]) for b in drawn] == [
        (p["download_bytes"], p["upload_bytes"]) for p in history["points"]]
    page.select_option("#period", "2026-12")
    ready(page, period="2026-12")
    assert shown(page, "#wan-download")[1] == site.api("/api/v1/usage")["wan"]["download_bytes"]


def test_router_health_and_the_last_update(dashboard, site):
    page, _, _ = dashboard
    routers = site.api("/api/v1/routers")["routers"]
    assert page.text_content("#routers-summary") == "2 of 3 OK"
    cards = page.eval_on_selector_all("#routers article", """as => as.map(a => [
        a.dataset.router, a.querySelector('.badge').textContent,
        [...a.querySelectorAll('li')].map(li => li.textContent)])""")
    assert [c[0] for c in cards] == [r["router"] for r in routers] == ["ap-2", "ap-3", "router-1"]
    ap3 = dict(zip(["name", "badge", "endpoints"], cards[1], strict=True))
    assert ap3["badge"] == "Error"
    assert ap3["endpoints"] == ["ap_statslast OK 9 Dec 2026 12:00failing 10 Dec 2026 12:00: "
                                "HTTP 500 Internal Server Error"]
    assert cards[2][1] == "OK" and len(cards[2][2]) == 3
    assert page.text_content("#updated") == "Updated 10 Dec 2026 12:00 · just now"
    assert page.get_attribute("#freshness", "data-status") == "ok"


def test_hostile_hostnames_are_shown_as_text(dashboard, site):
    page, watch, _ = dashboard
    table = {r["mac"]: r for r in rows(page)}
    assert table[HOSTILE]["label"] == XSS
    assert table[QUOTED]["label"] == QUOTES
    assert page.locator(f"#devices tr[data-mac='{HOSTILE}'] button.name").inner_text() == XSS
    assert page.evaluate("document.querySelectorAll('img, script:not([src]), iframe').length") == 0
    page.click(f"#devices tr[data-mac='{HOSTILE}'] button.name")
    ready(page, device=HOSTILE)
    assert page.text_content("#device-chart-title") == f"{XSS} per day"
    page.click(f"#devices tr[data-mac='{QUOTED}'] td.num.total-col")  # the row, not the name
    ready(page, device=QUOTED)
    assert page.text_content("#device-chart-title bdi") == QUOTES
    # The name is shown as it is, with a warning that it holds characters that change its look.
    assert page.get_attribute(f"#devices tr[data-mac='{QUOTED}'] .flag", "title") == (
        "This name contains invisible or direction-changing characters: U+202E, U+200F")
    page.fill("#filter", "<img")  # the printer's configured name is markup too
    assert sorted(r["mac"] for r in rows(page)) == [HOSTILE, PRINTER]
    page.fill("#filter", "alert(1)")
    assert [r["mac"] for r in rows(page)] == [HOSTILE]
    page.wait_for_timeout(300)  # give an injected onerror handler time to run, if one got in
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert watch.dialogs == [] and watch.errors == []


def test_it_refreshes_by_itself_with_conditional_requests(browser, site):
    context, page, watch = _open(browser, site)
    try:
        page.clock.install()
        page.goto(site.url + "/")
        ready(page)
        seen = len([r for r in watch.requests if "/api/v1/usage" in r.url])
        statuses = []
        page.on("response", lambda r: statuses.append((r.url, r.status)) if "/api/v1/" in r.url else None)
        with page.expect_request(lambda r: "/api/v1/usage" in r.url, timeout=WAIT_MS) as again:
            page.clock.run_for(61_000)
        headers = again.value.all_headers()
        assert "if-none-match" in headers  # revalidation: the browser kept the ETag
        ready(page)
        assert len([r for r in watch.requests if "/api/v1/usage" in r.url]) == seen + 1
        watch.assert_quiet()
    finally:
        context.close()


def test_on_a_phone_the_page_fits_and_the_table_works(browser, site, tmp_path):
    context, page, watch = _open(browser, site, PHONE, is_mobile=True, has_touch=True,
                                 device_scale_factor=2)
    try:
        page.goto(site.url + "/")
        ready(page)
        widths = page.evaluate("""() => [document.documentElement.scrollWidth,
            document.body.scrollWidth, window.innerWidth]""")
        assert widths == [390, 390, 390], "the page is wider than the phone"
        table = page.locator("#devices")
        assert table.is_visible() and page.is_visible("#filter")
        # The IP (or the MAC, without one) moves under the name instead of taking a column.
        assert not page.is_visible(f"#devices tr[data-mac='{LAPTOP}'] td.col-mac")
        assert page.locator(f"#devices tr[data-mac='{LAPTOP}'] .sub").inner_text() == IPS[LAPTOP]
        assert page.locator(f"#devices tr[data-mac='{TABLET}'] .sub").inner_text() == TABLET
        # Neither table, the owners' nor the devices', is wider than the phone: the owner column
        # goes, and the owners' device counts move under their names.
        assert not page.is_visible(f"#devices tr[data-mac='{LAPTOP}'] td.col-owner")
        anna = page.locator("#owners tbody tr", has_text="Anna")
        assert (anna.locator(".sub").inner_text(), anna.locator(".col-devices").is_visible()) == (
            "2 devices", False)
        for wrap in page.locator(".table-wrap").all():
            box = wrap.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390
            assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth"), "a table scrolls sideways"
        page.tap("#devices th[data-key=upload_bytes] button")
        uploads = [exact(r["upload"][1]) for r in rows(page)]
        assert uploads == sorted(uploads, reverse=True)
        page.fill("#filter", "tv")
        assert [r["mac"] for r in rows(page)] == [TV]
        page.tap(f"#devices tr[data-mac='{TV}'] button.name")
        ready(page, device=TV)
        assert page.evaluate("document.documentElement.scrollWidth") == 390
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        if os.environ.get("DASHBOARD_PHONE_PNG"):
            page.screenshot(path=os.environ["DASHBOARD_PHONE_PNG"], full_page=True)
        watch.assert_quiet()
    finally:
        context.close()


def test_screenshot_for_the_readme(dashboard):
    """docs/dashboard.png, from this browser: the current period with the laptop picked."""
    page, _, _ = dashboard
    page.click(f"#devices tr[data-mac='{LAPTOP}'] button.name")
    ready(page, device=LAPTOP)
    page.evaluate("window.scrollTo(0, 0)")  # the top of the page, had the click scrolled it
    page.mouse.move(0, 0)
    image = page.screenshot(type="png")
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", image[16:24]) == (DESKTOP["width"], DESKTOP["height"])
    assert 20_000 < len(image) < 300_000, len(image)
    if not SCREENSHOT.exists() or SCREENSHOT.read_bytes() != image:
        SCREENSHOT.write_bytes(image)


def test_without_databases_the_page_says_why(browser, tmp_path):
    """No collector run yet: the page still loads, and shows the API's reason."""
    with gunicorn_server(tmp_path / "empty", tmp_path / "gunicorn.log") as server:
        context, page, watch = _open(browser, Site(server, tmp_path / "empty"))
        try:
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-state=error]", state="attached", timeout=WAIT_MS)
            missing = (f"{tmp_path / 'empty' / 'network_stats.db'}: "
                       "no such database (has the collector run yet?)")
            assert re.fullmatch(r"Cannot load the data: api/v1/(periods|routers): " + re.escape(missing),
                                page.text_content("#error"))
            # The browser itself reports the 503s; nothing else may go wrong.
            assert all("status of 503" in e for e in watch.errors), watch.errors
            assert watch.dialogs == [] and watch.elsewhere == []
        finally:
            context.close()


# --- Names and owners from the configuration ---------------------------------------------------


def owners_expected(site, period: str | None = None) -> list[dict]:
    answer = site.api("/api/v1/owners", **({"period": period} if period else {}))
    return [{"owner": ("(no owner)" if g["owner"] is None
                       else g["owner"] + ("\u26a0" if hidden(g["owner"]) else "")),
             "devices": str(g["devices"]),
             "bytes": [f"{g[k]:,} bytes" for k in ("download_bytes", "upload_bytes", "total_bytes")],
             "picked": False} for g in answer["owners"]]


def test_the_owners_table_equals_the_api(dashboard, site):
    page, _, _ = dashboard
    assert page.evaluate(OWNERS_JS) == owners_expected(site)
    # Each owner's devices per the configuration, "no owner" being the rest: all of them.
    groups = {g["owner"]: sorted(g["macs"]) for g in site.api("/api/v1/owners")["owners"]}
    assert groups == {"Family": [TV], "Anna": sorted([LAPTOP, WORK]), ESCAPES: [PRINTER],
                      MARKUP_OWNER: [TABLET], None: sorted([HOSTILE, QUOTED])}
    foot = page.locator("#owners tfoot td.num").all()
    clients = site.api("/api/v1/usage")["clients"]
    assert foot[0].text_content() == "7"  # devices
    assert [exact(td.get_attribute("title")) for td in foot[1:4]] == [
        sum(c[k] for c in clients) for k in ("download_bytes", "upload_bytes", "total_bytes")]
    page.select_option("#period", "2026-11")
    ready(page, period="2026-11")
    assert page.evaluate(OWNERS_JS) == owners_expected(site, "2026-11")


def test_filtering_the_devices_by_owner(dashboard, site):
    page, _, _ = dashboard
    options = page.eval_on_selector_all("#owner-filter option", "os => os.map(o => o.textContent)")
    # Every owner of the period, as text, between "All owners" and "No owner".
    assert (options[0], sorted(options[1:-1]), options[-1]) == (
        "All owners", sorted(["Anna", "Family", ESCAPES, MARKUP_OWNER]), "No owner")
    page.select_option("#owner-filter", label="Anna")
    assert sorted(r["mac"] for r in rows(page)) == sorted([LAPTOP, WORK])
    assert page.text_content("#count") == "2 of 7 devices"
    assert page.evaluate(OWNERS_JS)[[g["owner"] for g in owners_expected(site)].index("Anna")]["picked"]
    page.fill("#filter", "work")  # both filters at once
    assert [r["mac"] for r in rows(page)] == [WORK]
    page.fill("#filter", "")
    page.select_option("#owner-filter", label="No owner")
    assert sorted(r["mac"] for r in rows(page)) == sorted([HOSTILE, QUOTED])
    assert {r["owner"] for r in rows(page)} == {"–"}
    page.select_option("#owner-filter", label="All owners")
    assert len(rows(page)) == 7
    # A row of the owners table filters by its owner; clicking it again shows everyone.
    row = page.locator("#owners tbody tr", has_text="Family")
    row.click()
    assert [r["mac"] for r in rows(page)] == [TV]
    assert page.eval_on_selector("#owner-filter", "s => s.selectedOptions[0].textContent") == "Family"
    page.locator("#owners tbody tr", has_text="Family").click()
    assert len(rows(page)) == 7 and page.input_value("#owner-filter") == "all"
    # The filter searches names and owners too.
    page.fill("#filter", "anna")
    assert sorted(r["mac"] for r in rows(page)) == sorted([LAPTOP, WORK])


def test_hostile_names_and_owners_from_the_configuration_are_text(dashboard, site):
    page, watch, _ = dashboard
    table = {r["mac"]: r for r in rows(page)}
    assert (table[PRINTER]["label"], table[PRINTER]["host"]) == (XSS_NAME, None)  # no hostname
    assert table[PRINTER]["owner"] == ESCAPES + "\u26a0"  # shown as it is, flagged: it hides characters
    assert page.locator(f"#devices tr[data-mac='{PRINTER}'] .col-owner .flag").get_attribute("title") == (
        "This name contains invisible or direction-changing characters: U+001B")
    assert (table[TABLET]["label"], table[TABLET]["owner"]) == (None, MARKUP_OWNER)
    # All 200 characters are in the page (the style cuts what does not fit, with an ellipsis).
    assert (table[WORK]["label"], table[WORK]["host"]) == (LONG, "work-laptop")
    assert page.locator(f"#devices tr[data-mac='{WORK}'] button.name").evaluate(
        "b => b.scrollWidth > b.clientWidth") or page.locator(
        f"#devices tr[data-mac='{WORK}'] td.col-name").evaluate("td => td.scrollWidth > td.clientWidth")
    # No element was made from any of it: the page's own markup has no <img> and no <b>.
    assert page.evaluate("document.querySelectorAll('img, b, script:not([src]), iframe').length") == 0
    page.click(f"#devices tr[data-mac='{PRINTER}'] button.name")
    ready(page, device=PRINTER)
    assert page.text_content("#device-chart-title") == f"{XSS_NAME} per day"
    page.click(f"#devices tr[data-mac='{WORK}'] button.name")
    ready(page, device=WORK)
    assert page.text_content("#device-chart-title") == f"{LONG} (work-laptop) per day"
    page.select_option("#owner-filter", label=ESCAPES)
    assert [r["mac"] for r in rows(page)] == [PRINTER]
    page.wait_for_timeout(300)  # give an injected onerror handler time to run, if one got in
    assert page.evaluate("document.querySelectorAll('img, b').length") == 0
    assert watch.dialogs == [] and watch.errors == []
