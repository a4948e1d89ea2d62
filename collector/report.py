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


def render_usage(usage: dict) -> str:
    """The period's WAN total and a per-device table sorted by total."""
    period = usage["period"]
    wan = usage["wan"]
    lines = [
        f"Billing period {period['label']}  ({period['start'][:10]} to {period['end'][:10]}, "
        f"end exclusive)",
        f"Last update: {usage['updated_at'] or 'never'}",
        "",
        f"WAN  download {human_bytes(wan['rx_bytes']):>12}   upload {human_bytes(wan['tx_bytes']):>12}"
        f"   total {human_bytes(wan['rx_bytes'] + wan['tx_bytes']):>12}",
        "",
    ]
    header = ("hostname", "ip", "mac", "download", "upload", "total")
    rows = [
        (printable(c["hostname"] or "-", 32), c["ip"] or "-", c["mac"], human_bytes(c["download_bytes"]),
         human_bytes(c["upload_bytes"]), human_bytes(c["total_bytes"]))
        for c in usage["clients"]
    ]
    if not rows:
        lines.append("No device traffic recorded in this period.")
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]

    def fmt(row):
        left = [row[i].ljust(widths[i]) for i in range(3)]
        right = [row[i].rjust(widths[i]) for i in range(3, 6)]
        return "  ".join(left + right).rstrip()

    lines.append(fmt(header))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(r) for r in rows)
    total_rx = sum(c["download_bytes"] for c in usage["clients"])
    total_tx = sum(c["upload_bytes"] for c in usage["clients"])
    lines.append("  ".join("-" * w for w in widths))
    totals = (human_bytes(total_rx), human_bytes(total_tx), human_bytes(total_rx + total_tx))
    label_width = sum(widths[:3]) + 4
    lines.append("all devices".ljust(label_width) + "  " + "  ".join(
        t.rjust(widths[3 + i]) for i, t in enumerate(totals)))
    return "\n".join(lines) + "\n"
