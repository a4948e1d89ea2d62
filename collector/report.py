"""Text rendering of a period's usage, like `vnstat -m` does for interfaces. Pure."""

from __future__ import annotations

from collector.text import printable

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: int) -> str:
    """Binary units throughout (1 GiB = 1024^3 bytes), as vnStat shows by default."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{n} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# Text in a cell is escaped (collector.text.printable) and cut to this many characters:
# hostnames come from DHCP, names and owners from the configuration, up to 200 characters.
NAME_WIDTH = 32
OWNER_WIDTH = 24
NO_OWNER = "(no owner)"


def _text(value: str | None, limit: int) -> str:
    return "-" if not value else printable(value, limit)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], left: int,
           footer: tuple[str, ...]) -> list[str]:
    """Lines of a table: the first `left` columns text (left-aligned), the rest numbers, and a
    footer row (its label in the first column) under a rule."""
    widths = [max(len(r[i]) for r in [*rows, header, footer]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[i].ljust(widths[i]) if i < left else row[i].rjust(widths[i])
                 for i in range(len(header))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [fmt(header), rule, *map(fmt, rows), rule, fmt(footer)]


def _heading(answer: dict) -> list[str]:
    period = answer["period"]
    return [
        f"Billing period {period['label']}  ({period['start'][:10]} to {period['end'][:10]}, "
        f"end exclusive)",
        f"Last update: {answer['updated_at'] or 'never'}",
        "",
    ]


def _sizes(totals: dict) -> tuple[str, str, str]:
    return (human_bytes(totals["download_bytes"]), human_bytes(totals["upload_bytes"]),
            human_bytes(totals["total_bytes"]))


def _outlook(wan: dict) -> list[str]:
    """The cap and the forecast under the WAN line, when there is something to say."""
    lines = []
    cap = wan.get("cap_bytes")
    total = wan["rx_bytes"] + wan["tx_bytes"]
    if cap:
        lines.append(f"Cap  {human_bytes(cap)}, {100 * total / cap:.1f}% used")
    if "forecast_bytes" in wan and wan["forecast_note"] != "the period is over":
        if wan["forecast_bytes"] is None:
            lines.append(f"Forecast: {wan['forecast_note']}")
        else:
            above = f", {'above' if wan['forecast_bytes'] > cap else 'below'} the cap" if cap else ""
            lines.append(f"Forecast: {human_bytes(wan['forecast_bytes'])} at the period's end{above} "
                         f"({wan['forecast_note']})")
    return lines


def render_usage(usage: dict) -> str:
    """The period's WAN total and a per-device table sorted by total: the configured name and
    owner where set, the DHCP hostname beside them."""
    wan = usage["wan"]
    lines = [
        *_heading(usage),
        f"WAN  download {human_bytes(wan['rx_bytes']):>12}   upload {human_bytes(wan['tx_bytes']):>12}"
        f"   total {human_bytes(wan['rx_bytes'] + wan['tx_bytes']):>12}",
        *_outlook(wan),
        "",
    ]
    clients = usage["clients"]
    if not clients:
        lines.append("No device traffic recorded in this period.")
        return "\n".join(lines) + "\n"
    header = ("name", "hostname", "owner", "ip", "mac", "download", "upload", "total")
    rows = [
        (_text(c["name"], NAME_WIDTH), _text(c["hostname"], NAME_WIDTH), _text(c["owner"], OWNER_WIDTH),
         # The IP is validated when read from a router, but the Go daemon's rows were not.
         _text(c["ip"], 40), c["mac"], *_sizes(c))
        for c in clients
    ]
    totals = {k: sum(c[k] for c in clients) for k in ("download_bytes", "upload_bytes", "total_bytes")}
    footer = ("all devices", "", "", "", "", *_sizes(totals))
    lines.extend(_table(header, rows, 5, footer))
    return "\n".join(lines) + "\n"


def render_owners(owners: dict) -> str:
    """The period's totals per owner, biggest first, devices without one as "(no owner)"."""
    lines = _heading(owners)
    groups = owners["owners"]
    if not groups:
        lines.append("No device traffic recorded in this period.")
        return "\n".join(lines) + "\n"
    header = ("owner", "devices", "download", "upload", "total")
    rows = [(NO_OWNER if g["owner"] is None else printable(g["owner"], OWNER_WIDTH), str(g["devices"]),
             *_sizes(g)) for g in groups]
    footer = ("all devices", str(sum(g["devices"] for g in groups)), *_sizes(owners["total"]))
    lines.extend(_table(header, rows, 1, footer))
    return "\n".join(lines) + "\n"
