// The netstat-collect dashboard: draws /api/v1 and /healthz, refreshes every minute.
//
// Every string from the data (hostnames come from DHCP, chosen by whoever joins the
// network; names and owners from the configuration, pasted from anywhere) is set with
// textContent or as an attribute value, never parsed as HTML.
// The page's Content-Security-Policy forbids inline script and other origins besides.
// Answers carry ETags and `Cache-Control: no-cache`: the browser revalidates each
// fetch, and an unchanged answer costs a 304.
"use strict";

(() => {
  const REFRESH_MS = 60 * 1000;
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const TEXT_KEYS = new Set(["label", "owner", "ip", "mac"]);
  // Rows drawn at once. A table of 10,000 devices (140,000 elements) takes seconds to
  // build and lay out, for every keystroke in the filter and every frame of a scroll;
  // the first rows of the order asked for, and more on request, stay quick.
  const ROWS_AT_ONCE = 200;
  // One collator for every comparison: localeCompare with options builds one per call,
  // which is most of the time a sort of 10,000 names takes.
  const BY_NAME = new Intl.Collator(undefined, { sensitivity: "base" });
  const BY_TEXT = new Intl.Collator();

  const state = {
    current: null,       // the current period's label
    period: null,        // the label shown; null: the current one
    periods: [],
    usage: null,
    owners: null,        // /api/v1/owners for the period shown
    ownerFilter: null,   // null: every owner; else { owner } (owner null: devices without one)
    wanHistory: null,
    device: null,        // the MAC picked in the table
    deviceHistory: null,
    sort: { key: "total_bytes", descending: true },
    filter: "",
    rowsShown: ROWS_AT_ONCE,
    generation: 0,       // a newer load makes an older one's answers stale
    loadedAt: 0,
    timer: null,
  };

  const $ = (id) => document.getElementById(id);

  // --- Formatting ---------------------------------------------------------------------

  /** Binary units, two decimals, like `netstat-collect report` (collector/report.py). */
  function humanBytes(n) {
    let value = n;
    for (const unit of UNITS) {
      if (Math.abs(value) < 1024 || unit === UNITS[UNITS.length - 1]) {
        return unit === "B" ? `${n} B` : `${value.toFixed(2)} ${unit}`;
      }
      value /= 1024;
    }
    return `${n} B`;
  }

  function exactBytes(n) {
    return `${n.toLocaleString("en-US")} bytes`;
  }

  /** An element showing a byte count in human units, with the exact count on hover. */
  function bytesText(node, n) {
    node.textContent = humanBytes(n);
    node.title = exactBytes(n);
    return node;
  }

  function percent(part, whole) {
    if (!whole) return "0.0 %";
    const value = (100 * part) / whole;
    return value > 0 && value < 0.1 ? "< 0.1 %" : `${value.toFixed(1)} %`;
  }

  /** `2026-12-01T00:30:00+00:00` as `1 Dec 2026 00:30`, in the collector's zone as sent. */
  function when(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso || "");
    if (!m) return iso || "never";
    return `${Number(m[3])} ${MONTHS[Number(m[2]) - 1]} ${m[1]} ${m[4]}:${m[5]}`;
  }

  function dayParts(day) {
    const [y, mo, d] = day.slice(0, 10).split("-").map(Number);
    return { y, mo, d, weekday: new Date(Date.UTC(y, mo - 1, d)).getUTCDay() };
  }

  function dayText(day, withYear = true) {
    const p = dayParts(day);
    return `${p.d} ${MONTHS[p.mo - 1]}${withYear ? ` ${p.y}` : ""}`;
  }

  /** The day before a YYYY-MM-DD day. */
  function dayBefore(day) {
    const p = dayParts(day);
    return new Date(Date.UTC(p.y, p.mo - 1, p.d - 1)).toISOString().slice(0, 10);
  }

  /** A period's days as text: `1 Dec – 31 Dec 2026`. */
  function periodRange(period) {
    const first = period.start.slice(0, 10);
    const last = dayBefore(period.end.slice(0, 10));
    const sameYear = first.slice(0, 4) === last.slice(0, 4);
    return `${dayText(first, !sameYear)} – ${dayText(last)}`;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return "just now";
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ago`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${m % 60} min ago`;
    return `${Math.floor(h / 24)} d ${h % 24} h ago`;
  }

  // --- DOM helpers: text only -----------------------------------------------------------

  function el(tag, options = {}, children = []) {
    const node = document.createElement(tag);
    if (options.className) node.className = options.className;
    if (options.text !== undefined) node.textContent = options.text;
    if (options.title !== undefined) node.title = options.title;
    for (const [name, value] of Object.entries(options.attrs || {})) node.setAttribute(name, value);
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Text that may carry bidirectional controls (a hostname), isolated from its neighbours. */
  function bidi(text) {
    return el("bdi", { text });
  }

  // Invisible and direction-changing characters: a name can hide or reorder what it shows.
  const HIDDEN_CHARS = /[\p{Cc}\p{Cf}]/gu;

  /** A name, hostname or owner as text, flagged when it holds characters that change how it looks. */
  function nameText(text) {
    const hidden = [...new Set(text.match(HIDDEN_CHARS) || [])];
    if (hidden.length === 0) return [bidi(text)];
    const codes = hidden.map((c) => `U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}`);
    return [bidi(text), el("span", { className: "flag", text: "\u26a0",
      title: `This name contains invisible or direction-changing characters: ${codes.join(", ")}`,
      attrs: { role: "img", "aria-label": "hidden characters" } })];
  }

  // --- Talking to the API -----------------------------------------------------------------

  class ApiError extends Error {}

  async function getJSON(path, { acceptStatus = [] } = {}) {
    let response;
    try {
      response = await fetch(path, { headers: { Accept: "application/json" } });
    } catch (e) {
      throw new ApiError(`cannot reach the server (${path})`);
    }
    if (!response.ok && !acceptStatus.includes(response.status)) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && typeof body.error === "string") message = body.error;
      } catch (e) {
        // not JSON: keep the status line
      }
      throw new ApiError(`${path}: ${message}`);
    }
    return response.json();
  }

  function historyPath(base, period) {
    const params = new URLSearchParams({ granularity: "day", from: period.start.slice(0, 10) });
    // The current period runs to today (the server's default); a past one to its last day.
    if (period.label !== state.current) params.set("to", dayBefore(period.end.slice(0, 10)));
    return `${base}?${params}`;
  }

  function devicePath(mac) {
    return `api/v1/clients/${encodeURIComponent(mac)}/history`;
  }

  async function load() {
    const generation = ++state.generation;
    document.body.dataset.state = "loading";
    try {
      const [periods, routers, health] = await Promise.all([
        getJSON("api/v1/periods"),
        getJSON("api/v1/routers"),
        getJSON("healthz", { acceptStatus: [503] }),
      ]);
      state.current = periods.current;
      const label = state.period || periods.current;
      const [usage, owners] = await Promise.all([
        getJSON(`api/v1/usage?period=${encodeURIComponent(label)}`),
        getJSON(`api/v1/owners?period=${encodeURIComponent(label)}`),
      ]);
      const [wanHistory, deviceHistory] = await Promise.all([
        getJSON(historyPath("api/v1/wan/history", usage.period)),
        state.device ? getJSON(historyPath(devicePath(state.device), usage.period)) : null,
      ]);
      if (generation !== state.generation) return; // a newer load is on its way
      Object.assign(state, { periods: periods.periods, usage, owners, wanHistory, deviceHistory });
      state.loadedAt = Date.now();
      renderPeriods();
      renderFreshness(health, usage);
      renderWan(usage);
      renderOwners();
      renderTable();
      renderCharts();
      renderRouters(routers);
      showError(null);
      document.body.dataset.period = usage.period.label;
      document.body.dataset.device = state.device || "";
      document.body.dataset.state = "ready";
    } catch (e) {
      if (generation !== state.generation) return;
      if (!(e instanceof ApiError)) throw e;
      showError(e.message);
      document.body.dataset.state = "error";
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      if (document.hidden) return; // resumed by visibilitychange
      load().finally(schedule);
    }, REFRESH_MS);
  }

  function showError(message) {
    const banner = $("error");
    banner.hidden = message === null;
    banner.textContent = message === null ? "" : `Cannot load the data: ${message}`;
  }

  // --- Header: periods and freshness ------------------------------------------------------

  function renderPeriods() {
    const select = $("period");
    const labels = new Map(state.periods.map((p) => [p.label, p]));
    const shown = state.usage.period;
    if (!labels.has(state.current) && shown.label === state.current) labels.set(shown.label, shown);
    if (!labels.has(shown.label)) labels.set(shown.label, shown);
    const options = [...labels.values()].sort((a, b) => (a.label < b.label ? 1 : -1)).map((p) => {
      const text = `${periodRange(p)}${p.label === state.current ? " (current)" : ""}`;
      return el("option", { text, attrs: { value: p.label } });
    });
    select.replaceChildren(...options);
    select.value = shown.label;
    select.disabled = false;
    $("range").textContent = `${periodRange(shown)}${shown.label === state.current ? "" : " · past period"}`;
  }

  function renderFreshness(health, usage) {
    const box = $("freshness");
    const updated = $("updated");
    box.dataset.status = health.status;
    if (usage.updated_at === null) {
      updated.textContent = "No collector run yet";
      updated.title = health.reason || "";
      return;
    }
    let text = `Updated ${when(usage.updated_at)}`;
    if (health.age_seconds !== null) text += ` · ${duration(health.age_seconds)}`;
    updated.textContent = text;
    updated.title = health.status === "ok" ? `Last run finished ${usage.updated_at}`
      : `Stale: ${health.reason}`;
  }

  // --- WAN cards and the cap ---------------------------------------------------------------

  function renderWan(usage) {
    const wan = usage.wan;
    bytesText($("wan-download"), wan.download_bytes);
    bytesText($("wan-upload"), wan.upload_bytes);
    bytesText($("wan-total"), wan.total_bytes);
    const meter = $("cap-meter");
    const of = $("cap-of");
    const note = $("cap-text");
    const cap = wan.cap_bytes;
    meter.hidden = cap === null;
    of.replaceChildren();
    note.classList.remove("over");
    if (cap === null) {
      note.textContent = "No monthly cap set (settings.monthly_cap_gib)";
      return;
    }
    of.append(" of ", bytesText(el("span", { attrs: { id: "cap" } }), cap));
    const scale = Math.max(cap, wan.total_bytes) || 1;
    $("cap-dl").style.width = `${(100 * wan.download_bytes) / scale}%`;
    $("cap-ul").style.width = `${(100 * wan.upload_bytes) / scale}%`;
    const bar = $("cap-bar");
    bar.classList.toggle("over", wan.total_bytes > cap);
    bar.setAttribute("aria-label", `${percent(wan.total_bytes, cap)} of the monthly cap used`);
    const left = cap - wan.total_bytes;
    note.replaceChildren(left >= 0
      ? `${percent(wan.total_bytes, cap)} of the cap used · ` : `Over the cap by `,
    bytesText(el("span"), Math.abs(left)), left >= 0 ? " left" : "");
    note.classList.toggle("over", left < 0);
    // How far into the period the last run was: where the bar would be at an even pace.
    const elapsed = $("cap-elapsed");
    const start = Date.parse(usage.period.start);
    const end = Date.parse(usage.period.end);
    const at = usage.updated_at === null ? NaN : Date.parse(usage.updated_at);
    const fraction = (at - start) / (end - start);
    elapsed.hidden = !(usage.period.label === state.current && fraction > 0 && fraction < 1);
    if (!elapsed.hidden) {
      elapsed.style.left = `${(100 * fraction * cap) / scale}%`;
      elapsed.title = `${(100 * fraction).toFixed(0)} % of the period has passed`;
      note.append(` · ${(100 * fraction).toFixed(0)} % of the period passed`);
      // The collector's forecast (collector/alerts.py): a straight line through the period so far.
      if (wan.forecast_bytes === null) {
        note.append(` · forecast: ${wan.forecast_note}`);
      } else {
        const forecast = el("span", { attrs: { id: "cap-forecast" } });
        note.append(" · at this pace ", bytesText(forecast, wan.forecast_bytes), " by the period's end");
        forecast.title = `${exactBytes(wan.forecast_bytes)}; ${wan.forecast_note}`;
        forecast.classList.toggle("over", wan.forecast_bytes > cap);
      }
    }
  }

  // --- The device table ------------------------------------------------------------------

  // The table's rows, built once per answer: a keystroke in the filter then only
  // tests each row's lower-cased text.
  let built = { usage: null, rows: [] };

  function rows() {
    if (built.usage !== state.usage) {
      const clients = state.usage.clients;
      const all = clients.reduce((sum, c) => sum + c.total_bytes, 0);
      built = {
        usage: state.usage,
        rows: clients.map((c) => ({
          // What the Device column shows and sorts by: the configured name, else the hostname.
          ...c, label: c.name !== null ? c.name : c.hostname, share: all ? c.total_bytes / all : 0, all,
          search: [c.name, c.owner, c.hostname, c.ip, c.mac].filter((v) => v !== null).map((v) => v.toLowerCase()),
        })),
      };
    }
    return built.rows;
  }

  function matches(row, needle) {
    if (state.ownerFilter !== null && row.owner !== state.ownerFilter.owner) return false;
    if (!needle) return true;
    return row.search.some((v) => v.includes(needle));
  }

  function compare(a, b) {
    const { key, descending } = state.sort;
    const x = a[key];
    const y = b[key];
    let order;
    if (x === null || y === null) {
      order = x === y ? 0 : x === null ? 1 : -1; // nameless devices last, either way
      if (order !== 0) return order;
    } else if (TEXT_KEYS.has(key)) {
      order = key === "ip" ? ipOrder(x, y) : BY_NAME.compare(x, y);
    } else {
      order = x - y;
    }
    if (descending) order = -order;
    return order || BY_TEXT.compare(a.mac, b.mac);
  }

  function ipOrder(x, y) {
    const parts = (ip) => ip.split(".").map(Number);
    const [p, q] = [parts(x), parts(y)];
    if (p.length !== 4 || q.length !== 4 || p.some(Number.isNaN) || q.some(Number.isNaN)) {
      return BY_TEXT.compare(x, y);
    }
    for (let i = 0; i < 4; i++) if (p[i] !== q[i]) return p[i] - q[i];
    return 0;
  }

  function renderTable() {
    const needle = state.filter.trim().toLowerCase();
    const all = rows();
    const shown = all.filter((r) => matches(r, needle)).sort(compare);
    const body = document.querySelector("#devices tbody");
    const drawn = shown.length > state.rowsShown ? shown.slice(0, state.rowsShown) : shown;
    body.replaceChildren(...drawn.map(deviceRow));
    const columns = String(document.querySelectorAll("#devices thead th").length);
    if (drawn.length < shown.length) {
      const rest = shown.length - drawn.length;
      const more = el("button", { className: "more", attrs: { type: "button" },
        text: `Show ${Math.min(rest, ROWS_AT_ONCE)} more (${rest} not shown)` });
      more.addEventListener("click", () => {
        state.rowsShown += ROWS_AT_ONCE;
        renderTable();
      });
      body.append(el("tr", { className: "more-row" }, [el("td", { attrs: { colspan: columns } }, [more])]));
    }
    if (shown.length === 0) {
      const text = all.length === 0 ? "No device traffic in this period." : "No device matches the filter.";
      body.append(el("tr", { className: "empty-row" }, [el("td", { text, attrs: { colspan: columns } })]));
    }
    for (const th of document.querySelectorAll("#devices th")) {
      if (th.dataset.key === state.sort.key) {
        th.setAttribute("aria-sort", state.sort.descending ? "descending" : "ascending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
    $("count").textContent = shown.length === all.length ? `${all.length} devices`
      : `${shown.length} of ${all.length} devices`;
    const sum = (key) => shown.reduce((s, r) => s + r[key], 0);
    const total = sum("total_bytes");
    const foot = document.querySelector("#devices tfoot");
    foot.replaceChildren();
    if (shown.length > 1) {
      foot.append(el("tr", {}, [
        el("th", { text: shown.length === all.length ? "All devices" : "Shown devices",
          attrs: { scope: "row" }, className: "foot-label col-name" }),
        el("td", { className: "col-owner" }),
        el("td", { className: "col-ip" }),
        el("td", { className: "col-mac" }),
        bytesText(el("td", { className: "num" }), sum("download_bytes")),
        bytesText(el("td", { className: "num" }), sum("upload_bytes")),
        bytesText(el("td", { className: "num" }), total),
        el("td", { className: "num col-share", text: percent(total, all[0].all) }),
      ]));
    }
  }

  function deviceRow(row) {
    const name = el("button", { className: "name", attrs: { type: "button" } },
      row.label === null ? [el("span", { className: "unnamed", text: "(no name)" })] : nameText(row.label));
    name.addEventListener("click", () => pickDevice(row.mac));
    // A configured name has the DHCP hostname beside it: the name the device gives itself.
    const host = row.name !== null && row.hostname !== null
      ? [el("span", { className: "host", title: "DHCP hostname" }, nameText(row.hostname))] : [];
    // Shown on narrow screens only, where the IP and MAC columns are not.
    const sub = el("span", { className: "sub", text: row.ip === null ? row.mac : row.ip,
      title: row.ip === null ? row.mac : `${row.ip} · ${row.mac}` });
    const shareBar = el("span", { className: "share-bar" }, [el("span", { className: "share-fill" })]);
    shareBar.firstChild.style.width = `${(100 * row.share).toFixed(2)}%`;
    const tr = el("tr", { attrs: { "data-mac": row.mac } }, [
      el("td", { className: "col-name" }, [name, ...host, sub]),
      el("td", { className: "col-owner" }, row.owner === null ? [el("span", { className: "unnamed", text: "–" })]
        : nameText(row.owner)),
      el("td", { className: "col-ip", text: row.ip === null ? "–" : row.ip }),
      el("td", { className: "col-mac mono", text: row.mac }),
      bytesText(el("td", { className: "num dl-col" }), row.download_bytes),
      bytesText(el("td", { className: "num ul-col" }), row.upload_bytes),
      bytesText(el("td", { className: "num total-col" }), row.total_bytes),
      el("td", { className: "num col-share" }, [
        el("span", { className: "share-text", text: percent(row.total_bytes, row.all) }), shareBar]),
    ]);
    if (row.mac === state.device) tr.classList.add("picked");
    tr.addEventListener("click", (event) => {
      if (event.target.closest("button") === null) pickDevice(row.mac);
    });
    return tr;
  }

  // --- Owners: per owner totals, and the device table's owner filter ---------------------------

  function ownerName(owner) {
    return el("span", { className: "owner-name" }, owner === null
      ? [el("span", { className: "unnamed", text: "(no owner)" })] : nameText(owner));
  }

  function renderOwners() {
    const { owners, total } = state.owners;
    const devices = owners.reduce((n, g) => n + g.devices, 0);
    $("owners-summary").textContent = owners.length === 0 ? "" : `${owners.length} owners, ${devices} devices`;
    const body = document.querySelector("#owners tbody");
    body.replaceChildren(...owners.map((g) => {
      const picked = state.ownerFilter !== null && state.ownerFilter.owner === g.owner;
      const tr = el("tr", { className: `${g.owner === null ? "no-owner" : ""}${picked ? " picked" : ""}`.trim() }, [
        el("th", { className: "col-owner-name", attrs: { scope: "row" } }, [ownerName(g.owner),
          // Shown on narrow screens only, where the Devices column is not.
          el("span", { className: "sub", text: g.devices === 1 ? "1 device" : `${g.devices} devices` })]),
        el("td", { className: "num col-devices", text: String(g.devices) }),
        bytesText(el("td", { className: "num dl-col" }), g.download_bytes),
        bytesText(el("td", { className: "num ul-col" }), g.upload_bytes),
        bytesText(el("td", { className: "num total-col" }), g.total_bytes),
        el("td", { className: "num col-share", text: percent(g.total_bytes, total.total_bytes) }),
      ]);
      tr.title = picked ? "Show every owner's devices" : "Show only this owner's devices";
      // The row stands for this owner: a click filters the device table (above) by it and
      // brings the table into view; a second click shows every owner's devices again.
      tr.addEventListener("click", () => {
        setOwnerFilter(picked ? null : { owner: g.owner });
        document.querySelector(".devices").scrollIntoView({ block: "start" });
      });
      return tr;
    }));
    if (owners.length === 0) {
      body.append(el("tr", { className: "empty-row" }, [
        el("td", { text: "No device traffic in this period.", attrs: { colspan: "6" } })]));
    }
    const foot = document.querySelector("#owners tfoot");
    foot.replaceChildren();
    if (owners.length > 1) {
      foot.append(el("tr", {}, [
        el("th", { text: "All devices", attrs: { scope: "row" }, className: "foot-label" }),
        el("td", { className: "num col-devices", text: String(devices) }),
        bytesText(el("td", { className: "num" }), total.download_bytes),
        bytesText(el("td", { className: "num" }), total.upload_bytes),
        bytesText(el("td", { className: "num" }), total.total_bytes),
        el("td", { className: "num col-share" }),
      ]));
    }
    renderOwnerFilter();
  }

  /** The owner filter's choices: every owner of the period by name, then "No owner". */
  function renderOwnerFilter() {
    const choices = state.owners.owners.map((g) => g.owner)
      .sort((a, b) => (a === null ? 1 : b === null ? -1 : BY_NAME.compare(a, b)));
    if (state.ownerFilter !== null && !choices.includes(state.ownerFilter.owner)) {
      state.ownerFilter = null; // that owner has no device in this period
    }
    const select = $("owner-filter");
    // Values are indexes into choices: an owner's text is never parsed, not even as a value.
    select.replaceChildren(el("option", { text: "All owners", attrs: { value: "all" } }),
      ...choices.map((owner, i) => el("option", { text: owner === null ? "No owner" : owner,
        attrs: { value: String(i) } })));
    select.value = state.ownerFilter === null ? "all" : String(choices.indexOf(state.ownerFilter.owner));
    select.onchange = () => setOwnerFilter(select.value === "all" ? null : { owner: choices[Number(select.value)] });
  }

  function setOwnerFilter(filter) {
    state.ownerFilter = filter;
    state.rowsShown = ROWS_AT_ONCE;
    renderOwners();
    renderTable();
  }

  function sortBy(key) {
    if (state.sort.key === key) {
      state.sort.descending = !state.sort.descending;
    } else {
      state.sort = { key, descending: !TEXT_KEYS.has(key) }; // sizes: biggest first
    }
    renderTable();
  }

  function pickDevice(mac) {
    state.device = mac;
    state.deviceHistory = null;
    renderTable();
    renderCharts();
    load().finally(schedule); // everything else revalidates too: 304s when unchanged
  }

  // --- Charts: stacked bars per day, plain SVG ------------------------------------------------

  /** Round axis steps in the unit the largest value is shown in. */
  function axis(max) {
    let unit = 0;
    while (unit < UNITS.length - 1 && max >= 1024 ** (unit + 1)) unit++;
    const scale = 1024 ** unit;
    const raw = max / scale / 4;
    const magnitude = 10 ** Math.floor(Math.log10(raw || 1));
    let step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= raw) || 10 * magnitude;
    if (unit === 0) step = Math.max(1, Math.round(step)); // no fractions of a byte
    const count = Math.max(1, Math.ceil(max / scale / step - 1e-9));
    let decimals = 0;
    while (decimals < 3 && Math.abs(step * 10 ** decimals - Math.round(step * 10 ** decimals)) > 1e-9) decimals++;
    const ticks = [];
    for (let i = 0; i <= count; i++) {
      ticks.push({ value: i * step * scale, text: `${(i * step).toFixed(decimals)} ${UNITS[unit]}` });
    }
    return { top: count * step * scale, ticks };
  }

  function pointText(p) {
    const d = dayParts(p.label);
    return `${WEEKDAYS[d.weekday]} ${dayText(p.label)}: download ${humanBytes(p.download_bytes)}, ` +
      `upload ${humanBytes(p.upload_bytes)}`;
  }

  function drawChart(box, readout, history, name) {
    const points = history.points;
    const width = Math.max(260, Math.floor(box.clientWidth));
    const height = width < 480 ? 170 : 210;
    const margin = { top: 10, right: 6, bottom: 24, left: 62 };
    const plotW = width - margin.left - margin.right;
    const plotH = height - margin.top - margin.bottom;
    const max = Math.max(0, ...points.map((p) => p.total_bytes));
    const { top, ticks } = axis(max || 1);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-label": `${name}: traffic per day` });
    const y = (v) => margin.top + plotH - (plotH * v) / top;
    for (const tick of ticks) {
      const ty = y(tick.value);
      chart.append(svg("line", { x1: margin.left, x2: width - margin.right, y1: ty, y2: ty, class: "grid" }));
      chart.append(svg("text", { x: margin.left - 8, y: ty + 4, class: "tick", "text-anchor": "end" }, tick.text));
    }
    const slot = plotW / Math.max(points.length, 1);
    const barW = Math.max(1, Math.min(28, slot * 0.72));
    const every = Math.max(1, Math.ceil(30 / slot));
    const total = history.total;
    const summary = `${dayText(history.from)} – ${dayText(history.to)}: download ${humanBytes(total.download_bytes)}, ` +
      `upload ${humanBytes(total.upload_bytes)}`;
    const totalTitle = `download ${exactBytes(total.download_bytes)}, upload ${exactBytes(total.upload_bytes)}`;
    readout.textContent = summary;
    readout.title = totalTitle;
    points.forEach((p, i) => {
      const x = margin.left + slot * i + (slot - barW) / 2;
      const group = svg("g", { class: "day", "data-day": p.label, tabindex: "0" });
      group.append(svg("title", {}, `${pointText(p)}\ndownload ${exactBytes(p.download_bytes)}\n` +
        `upload ${exactBytes(p.upload_bytes)}`));
      group.append(svg("rect", { x: margin.left + slot * i, y: margin.top, width: slot, height: plotH, class: "hit" }));
      const dlH = (plotH * p.download_bytes) / top;
      const ulH = (plotH * p.upload_bytes) / top;
      group.append(svg("rect", { x, y: margin.top + plotH - dlH, width: barW, height: dlH, class: "dl" }));
      group.append(svg("rect", { x, y: margin.top + plotH - dlH - ulH, width: barW, height: ulH, class: "ul" }));
      const show = () => {
        readout.textContent = pointText(p);
        readout.title = `download ${exactBytes(p.download_bytes)}, upload ${exactBytes(p.upload_bytes)}`;
      };
      const hide = () => {
        readout.textContent = summary;
        readout.title = totalTitle;
      };
      group.addEventListener("pointerenter", show);
      group.addEventListener("focus", show);
      group.addEventListener("pointerleave", hide);
      group.addEventListener("blur", hide);
      chart.append(group);
      if (i % every === 0) {
        chart.append(svg("text", { x: margin.left + slot * (i + 0.5), y: height - 7, class: "tick", "text-anchor": "middle" },
          String(dayParts(p.label).d)));
      }
    });
    chart.append(svg("line", { x1: margin.left, x2: width - margin.right, y1: y(0), y2: y(0), class: "axis" }));
    box.replaceChildren(chart);
    if (max === 0) box.append(el("p", { className: "chart-note", text: "No traffic in this period" }));
  }

  function renderCharts() {
    if (state.wanHistory) drawChart($("wan-chart"), $("wan-readout"), state.wanHistory, "WAN");
    const title = $("device-chart-title");
    const box = $("device-chart");
    const readout = $("device-readout");
    if (state.device === null) return;
    const client = state.usage.clients.find((c) => c.mac === state.device);
    const shown = client ? [client.name, client.hostname].filter((v) => v !== null) : [];
    const name = shown.length > 0 ? shown[0] : state.device;
    // The configured name, with the DHCP hostname beside it when both are known.
    title.replaceChildren(...nameText(name),
      ...(shown.length > 1 ? [" ", el("span", { className: "host" }, ["(", ...nameText(shown[1]), ")"])] : []),
      " per day");
    if (state.deviceHistory === null) {
      box.replaceChildren(el("p", { className: "empty", text: "Loading…" }));
      readout.textContent = "\u00a0";
      return;
    }
    drawChart(box, readout, state.deviceHistory, name);
  }

  // --- Routers -----------------------------------------------------------------------------

  function renderRouters(answer) {
    const list = answer.routers;
    const ok = list.filter((r) => r.ok).length;
    $("routers-summary").textContent = list.length === 0 ? "No router polled yet"
      : `${ok} of ${list.length} OK`;
    $("routers").replaceChildren(...list.map((router) => {
      const head = el("div", { className: "router-head" }, [
        el("h3", {}, [bidi(router.router)]),
        el("span", { className: `badge ${router.ok ? "ok" : "bad"}`, text: router.ok ? "OK" : "Error" }),
      ]);
      const facts = [];
      if (router.booted_at !== null) {
        facts.push(el("p", { className: "note", text: `Up since ${when(router.booted_at)}`, title: router.booted_at }));
      }
      const endpoints = el("ul", { className: "endpoints" }, router.endpoints.map((e) => {
        const item = el("li", { className: e.ok ? "ok" : "bad" }, [
          el("span", { className: "endpoint", text: e.endpoint }),
          el("span", { className: "last-ok", text: e.last_ok_at === null ? "never succeeded" : `last OK ${when(e.last_ok_at)}`,
            title: e.last_ok_at || "" }),
        ]);
        if (e.last_error !== null) {
          item.append(el("span", { className: "last-error" }, [
            el("span", { text: `${e.ok ? "earlier error" : "failing"} ${when(e.last_error_at)}: `, title: e.last_error_at || "" }),
            bidi(e.last_error),
          ]));
        }
        return item;
      }));
      return el("article", { className: `router ${router.ok ? "ok" : "bad"}`, attrs: { "data-router": router.router } },
        [head, ...facts, endpoints]);
    }));
  }

  // --- Wiring ------------------------------------------------------------------------------

  function start() {
    for (const th of document.querySelectorAll("#devices th")) {
      th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.key));
    }
    $("filter").addEventListener("input", (event) => {
      state.filter = event.target.value;
      state.rowsShown = ROWS_AT_ONCE;
      if (state.usage) renderTable();
    });
    $("period").addEventListener("change", (event) => {
      state.period = event.target.value === state.current ? null : event.target.value;
      load().finally(schedule);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && Date.now() - state.loadedAt >= REFRESH_MS) load().finally(schedule);
    });
    let width = window.innerWidth;
    let pending = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(() => {
        if (window.innerWidth !== width && state.usage) {
          width = window.innerWidth;
          renderCharts();
        }
      });
    });
    load().finally(schedule);
  }

  start();
})();
