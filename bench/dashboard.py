"""Section 8: the API and the dashboard at 10,000 devices (issue 15).

Over a year of history for 10,000 devices (bench/growth.py, written through
collector.storage), a real gunicorn on 127.0.0.1 serves:

- `/api/v1/usage` under wrk (as deployed, the answer cache on and warm) and with the
  cache off (every request reads and serialises the whole period: what the first
  request after each run pays);
- the dashboard, in Debian's Chromium (/usr/bin/chromium) driven by Playwright,
  headless, with the flags tests/test_dashboard.py uses so that it reaches nothing
  but the server: the time until the device table is drawn, the time a keystroke
  in the filter takes until the next frame, re-sorting, and frame times while
  scrolling the table.

Everything is bounded: wrk runs a fixed number of seconds, the Python client a fixed
number of requests, every browser wait has a timeout, and gunicorn is stopped by pid.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bench.api_load import Gunicorn, get, run_python_client, run_wrk
from bench.common import LOOPBACK, Profile, Sample, Section, fmt, log, percentile
from bench.growth import History, build_history

CHROMIUM = Path("/usr/bin/chromium")
# As tests/test_dashboard.py launches it: nothing fetched from the internet, names never
# resolve, no proxy (kept in step with that list by hand: the bench does not import tests).
CHROMIUM_ARGS = [
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--no-default-browser-check", "--disable-quic", "--disable-default-apps",
    "--disable-extensions", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--disable-breakpad",
    "--metrics-recording-only", "--no-pings", "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
]
DESKTOP = {"width": 1280, "height": 900}
WAIT_MS = 60_000
USAGE = "/api/v1/usage"
UNCACHED_APP = "api.app:create_app({'CACHE_ENTRIES': 0})"


def history_for(profile: Profile, work: Path) -> History:
    """The year of history for profile.big_devices, reused from the work directory if there."""
    devices = profile.big_devices
    data_dir = work / f"year-{devices}-days"
    marker = data_dir / "bench-history.json"
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved.get("devices") == devices and saved.get("days") == profile.big_days:
            log(f"8. reusing {data_dir}")
            return History(data_dir, devices, profile.big_days, False, saved["seconds"],
                           saved["commits"], saved["end"])
    log(f"8. a year of history for {devices:,} devices ({profile.big_days} days)")
    history = build_history(data_dir, devices, profile.big_days, per_run=False)
    marker.write_text(json.dumps({"devices": devices, "days": profile.big_days, "end": history.end,
                                  "seconds": history.seconds, "commits": history.commits}))
    return history


@dataclass
class ApiLine:
    label: str
    workers: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str
    load: float  # 1-minute load average just before


@dataclass
class Browser:
    table_ms: Sample = field(default_factory=Sample)  # navigation start -> table drawn
    ready_ms: Sample = field(default_factory=Sample)  # navigation start -> page state 'ready'
    rows: int = 0  # table rows drawn
    count: str = ""  # what the page says it shows
    keystroke_ms: Sample = field(default_factory=Sample)
    clear_ms: Sample = field(default_factory=Sample)  # emptying the filter: all rows back
    sort_ms: Sample = field(default_factory=Sample)
    frame_ms: Sample = field(default_factory=Sample)  # frame intervals while scrolling
    dom_nodes: int = 0
    js_heap_mb: float = float("nan")
    skipped: str = ""


@dataclass
class BigApiResult:
    history: History
    body_bytes: int
    lines: list[ApiLine]
    browser: Browser


def bench_big_api(profile: Profile, work: Path) -> BigApiResult:
    history = history_for(profile, work)
    use_wrk = profile.use_wrk and shutil.which("wrk") is not None
    lines = []
    body_bytes = 0
    for app, label in ((None, "cache on (as deployed)"), (UNCACHED_APP, "cache off")):
        for workers in profile.api_workers:
            log(f"8. API at {history.devices:,} devices: {label}, {workers} worker(s)")
            with Gunicorn(history.data_dir, history.end, workers, work, app=app) as server:
                status, _, body = get(server.port, USAGE)
                if status != 200:
                    raise RuntimeError(f"{USAGE}: HTTP {status}")
                body_bytes = len(body)
                for _ in range(4 * workers):
                    get(server.port, USAGE)
                for connections in (1, 8):
                    load = os.getloadavg()[0]
                    if use_wrk:
                        numbers = run_wrk(server.port, USAGE, None, connections,
                                          profile.load_seconds, work)
                    else:
                        numbers = run_python_client(server.port, USAGE, None, connections,
                                                    profile.load_requests, profile.load_seconds,
                                                    200)
                    lines.append(ApiLine(label, workers, connections, *numbers,
                                         "wrk" if use_wrk else "python client", load))
    log("8. the dashboard in Chromium")
    with Gunicorn(history.data_dir, history.end, 2, work) as server:
        browser = measure_dashboard(profile, f"http://{LOOPBACK}:{server.port}/", history.devices)
    return BigApiResult(history, body_bytes, lines, browser)


# In the page: wait for the next frame to be drawn after a change (rAF runs before paint;
# the timeout after it runs once the frame is out).
NEXT_FRAME = "() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))"

TABLE_DRAWN = """
([n, limit]) => new Promise((resolve, reject) => {
  // The table is drawn in the same task that sets the page's state to 'ready'.
  const check = () => {
    const rows = document.querySelectorAll('#devices tbody tr[data-mac]').length;
    if (document.body.dataset.state === 'ready' && rows > 0) {
      requestAnimationFrame(() => setTimeout(() => resolve({
        drawn: performance.now(), rows, count: document.getElementById('count').textContent}), 0));
    } else if (performance.now() > limit) reject(new Error(`${rows} rows after ${limit} ms`));
    else setTimeout(check, 5);
  };
  check();
})
"""

TYPE = """
async (text) => {
  const input = document.getElementById('filter');
  const times = [];
  for (const value of text) {
    const t0 = performance.now();
    input.value = value;
    input.dispatchEvent(new Event('input', {bubbles: true}));
    await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
    times.push(performance.now() - t0);
  }
  return times;
}
"""

SORT = """
async (key) => {
  const t0 = performance.now();
  document.querySelector(`#devices th[data-key="${key}"] button`).click();
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - t0;
}
"""

SCROLL = """
async (frames) => {
  const table = document.getElementById('devices');
  table.scrollIntoView();
  const step = Math.max(200, (table.offsetHeight - innerHeight) / frames);
  const gaps = [];
  let last = await new Promise(r => requestAnimationFrame(r));
  for (let i = 0; i < frames; i++) {
    window.scrollBy(0, step);
    const t = await new Promise(r => requestAnimationFrame(r));
    gaps.push(t - last);
    last = t;
  }
  return gaps;
}
"""


def measure_dashboard(profile: Profile, url: str, devices: int) -> Browser:
    result = Browser()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        result.skipped = "Playwright for Python is not installed (pip install '.[test]')"
        return result
    if not os.access(CHROMIUM, os.X_OK):
        result.skipped = f"{CHROMIUM} is missing (apt-get install chromium)"
        return result
    args = CHROMIUM_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=args)
        try:
            for attempt in range(profile.browser_repeats + 1):  # the first one warms up
                context = chromium.new_context(viewport=DESKTOP)
                try:
                    page = context.new_page()
                    page.set_default_timeout(WAIT_MS)
                    page.goto(url, wait_until="commit")
                    drawn = page.evaluate(TABLE_DRAWN, [devices, WAIT_MS])
                    page.wait_for_function("document.body.dataset.state === 'ready'")
                    if attempt == 0:
                        continue
                    result.table_ms.add(drawn["drawn"])
                    result.rows = drawn["rows"]
                    result.count = drawn["count"]
                    if str(devices) not in result.count.replace(",", ""):
                        raise RuntimeError(f"the page shows {result.count!r}, not {devices} devices")
                    timing = page.evaluate("performance.getEntriesByType('navigation')[0]"
                                           ".domContentLoadedEventEnd")
                    result.ready_ms.add(timing)
                    # Typing a name a character at a time, then clearing it (all rows back).
                    for ms in page.evaluate(TYPE, ["h", "ho", "hos", "host", "host-", "host-4",
                                                   "host-42", "host-421"]):
                        result.keystroke_ms.add(ms)
                    result.clear_ms.add(page.evaluate(TYPE, [""])[0])
                    result.sort_ms.add(page.evaluate(SORT, "label"))  # the Device column
                    result.sort_ms.add(page.evaluate(SORT, "total_bytes"))
                    for gap in page.evaluate(SCROLL, 90):
                        result.frame_ms.add(gap)
                    result.dom_nodes = page.evaluate("document.getElementsByTagName('*').length")
                    heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize"
                                         " : null")
                    if heap:
                        result.js_heap_mb = heap / 1e6
                finally:
                    context.close()
        finally:
            chromium.close()
    return result


def section_big_api(profile: Profile, result: BigApiResult) -> tuple[Section, dict]:
    h = result.history
    s = Section("8", f"The API and the dashboard at {h.devices:,} devices (issue 15)")
    s.table(["answer", "workers", "connections", "req/s", "p50 ms", "p99 ms", "requests", "errors",
             "load avg 1 min"],
            [[x.label, str(x.workers), str(x.connections), fmt(x.rps, 0), fmt(x.p50_ms, 2),
              fmt(x.p99_ms, 2), fmt(x.requests), fmt(x.errors), fmt(x.load, 2)]
             for x in result.lines])
    b = result.browser
    if b.skipped:
        s.note(f"Dashboard not measured: {b.skipped}.")
    else:
        def ms(sample: Sample) -> str:
            return (f"{fmt(sample.median, 0)} (max {fmt(sample.max, 0)}, n={len(sample.values)})"
                    if sample.values else "n/a")

        frames = b.frame_ms.values
        long_frames = sum(1 for f in frames if f > 50)
        s.table(["dashboard in Chromium (headless), ms", "median (max, n)"], [
            [f"navigation start -> device table drawn ({b.rows:,} rows drawn; '{b.count}')",
             ms(b.table_ms)],
            ["navigation start -> DOMContentLoaded", ms(b.ready_ms)],
            ["filter: one keystroke -> next frame", ms(b.keystroke_ms)],
            ["filter emptied (every row back) -> next frame", ms(b.clear_ms)],
            ["sort by a column -> next frame", ms(b.sort_ms)],
            ["frame interval while scrolling the table",
             f"{fmt(b.frame_ms.median, 1)} (p99 {fmt(percentile(frames, 99), 1)}, max "
             f"{fmt(b.frame_ms.max, 1)}; {long_frames} of {len(frames)} frames over 50 ms)"],
            ["DOM elements / JS heap", f"{b.dom_nodes:,} / {fmt(b.js_heap_mb, 1)} MB"],
        ])
    s.note(f"A year of history for {h.devices:,} devices ({h.days} days, bench/growth.py, "
           f"'one commit a day', built in {h.seconds:.0f} s); `{USAGE}` is "
           f"{result.body_bytes / 1024:,.0f} KiB. 'cache on': "
           + (f"wrk -t1 -cN -d{profile.load_seconds:g}s" if result.lines and
              result.lines[0].tool == "wrk" else
              f"the Python client, {profile.load_requests} requests per line")
           + " after every worker cached the answer; 'cache off': "
           f"gunicorn runs `{UNCACHED_APP}`, so every request reads the databases and "
           "serialises the answer, as the first request after each run does.")
    s.note(f"The dashboard: gunicorn with 2 workers, Chromium at {DESKTOP['width']}x"
           f"{DESKTOP['height']}; {profile.browser_repeats} page loads after a warm-up load, each "
           "in a new browser context. 'Drawn' is the frame after the last row is in the DOM. "
           "Keystroke times are measured in the page from setting the input's value to the "
           "next frame (per input event api/static/dashboard.js re-filters and re-sorts every "
           "device and redraws the rows it shows). Scrolling: 90 frames, each scrolling the "
           "window further through the table.")
    verdict = {"lines": result.lines, "browser": b, "devices": h.devices}
    return s, verdict


def usage_p99(verdict: dict, label: str, connections: int = 1, workers: int = 1) -> ApiLine | None:
    for x in verdict.get("lines", []):
        if x.label == label and x.connections == connections and x.workers == workers:
            return x
    return None

