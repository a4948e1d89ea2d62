"""Issue 15's targets: the large fleets (section 7) and 10,000 devices (section 8).

Each row says what was measured, met or not, and where a target is missed, where the
time or memory goes (from the instrumented runs' phases).
"""

from __future__ import annotations

from bench.common import Profile, fmt

MB = 1_000_000
# "Usable" is not a number in the issue: these are ours, after the usual rules of thumb
# (an answer to input within 100 ms feels immediate; a 50 ms task is a long task).
DRAWN_MS = 3000
KEYSTROKE_MS = 100
FRAME_MS = 34  # median frame interval while scrolling: 30 frames a second or better
LONG_FRAME_MS = 50
LONG_FRAMES_SHARE = 0.05


def where_time_goes(profile: Profile, large) -> str:
    """One fleet's overhead split by the instrumented runs' phases (section 7, second table)."""
    from bench.collection import phase_medians
    from bench.large import fetch_floor
    from collector import fetch

    phases = phase_medians(large.run)
    floor = fetch_floor(profile, large.run.requests, fetch.MAX_WORKERS)
    start_up = phases["interpreter start-up + exit"] + phases["imports"]
    databases = sum(phases[p] for p in ("open + migrate databases", "load baselines",
                                        "commit network_stats.db", "commit dhcp_leases.db",
                                        "close databases (checkpoint)"))
    fetch_extra = phases["fetch"] - profile.latency
    return (f"{large.routers:,} x {large.stations:,} (instrumented runs): start-up and imports "
            f"{start_up:.2f} s; fetch {fetch_extra:.2f} s beyond the {profile.latency:g} s latency, "
            f"of which {floor - profile.latency:.2f} s is the wave structure alone "
            f"({large.run.requests:,} requests, at most {fetch.MAX_WORKERS} at once, each wave "
            f"one latency); parse + account {phases['parse + account']:.2f} s; bucket "
            f"{phases['bucket into periods and days']:.2f} s; databases (open, load baselines, "
            f"two commits, close) {databases:.2f} s, of which the network_stats commit "
            f"{phases['commit network_stats.db']:.2f} s and the leases commit "
            f"{phases['commit dhcp_leases.db']:.2f} s; other {phases['other (CLI, config, output)']:.2f} s")


def targets(profile: Profile, verdicts: dict) -> list[list[str]]:
    rows: list[list[str]] = []

    def row(target: str, value: str, met: bool | None, why: str = "") -> None:
        state = "n/a" if met is None else ("met" if met else "MISSED")
        rows.append([target, value, state, why if met is False else ""])

    large = verdicts.get("7", {})
    big = large.get((1000, 100))
    if big is not None:
        overhead = big.run.wall.median - profile.latency
        row("run overhead above the slowest router < 3 s (1,000 routers x 100 stations)",
            f"{overhead:.2f} s (min {big.run.wall.min - profile.latency:.2f} s, max "
            f"{big.run.wall.max - profile.latency:.2f} s); CPU {big.run.cpu.median:.2f} s",
            overhead < 3, "Where the time goes, " + where_time_goes(profile, big) + ".")
        rss = big.run.maxrss.median
        row("peak RSS < 150 MB (1,000 x 100)",
            f"{rss / MB:.1f} MB (max {big.run.maxrss.max / MB:.1f} MB)", rss < 150 * MB,
            "Memory grows with the stations of the whole fleet: every station and lease becomes "
            "Python objects held until the commit (section 7, third table, kB per station), and "
            "the 100,000 leases (3 DHCP servers in this fleet) are parsed and held as well "
            "(python -m bench.where_memory).")
    curve = sorted((x for (r, _), x in large.items() if r == 1000), key=lambda x: x.stations)
    if len(curve) >= 3:
        def marginal(a, b, value) -> float:
            return (value(b) - value(a)) / (b.run.devices - a.run.devices)

        cpu_lo = marginal(curve[0], curve[1], lambda x: x.run.cpu.median)
        cpu_hi = marginal(curve[-2], curve[-1], lambda x: x.run.cpu.median)
        rss_lo = marginal(curve[0], curve[1], lambda x: x.run.maxrss.median)
        rss_hi = marginal(curve[-2], curve[-1], lambda x: x.run.maxrss.median)
        points = ", ".join(f"{x.run.devices:,}" for x in curve)
        # Linear: the cost of one more station does not rise with the fleet (25% for noise).
        linear = cpu_hi <= 1.25 * cpu_lo and rss_hi <= 1.25 * rss_lo
        row("growth no worse than linear in stations (1,000 routers; section 7's curve)",
            f"marginal CPU per station {cpu_lo * 1e6:.1f} us then {cpu_hi * 1e6:.1f} us, "
            f"marginal RSS per station {rss_lo / 1000:.2f} kB then {rss_hi / 1000:.2f} kB "
            f"(stations {points})", linear,
            "The cost of one more station rises with the fleet's size between the last two "
            "points of the curve (section 7): see its per-station columns.")
    small = large.get((50, 200))
    if small is not None:
        overhead = small.run.wall.median - profile.latency
        row("run overhead < 0.4 s (50 routers x 200 stations)",
            f"{overhead:.3f} s (min {small.run.wall.min - profile.latency:.3f} s); "
            f"CPU {small.run.cpu.median:.2f} s", overhead < 0.4,
            "Where the time goes, " + where_time_goes(profile, small) + ".")

    api = verdicts.get("8")
    if api:
        from bench.dashboard import usage_p99

        devices = api["devices"]
        cached = usage_p99(api, "cache on (as deployed)")
        uncached = usage_p99(api, "cache off")
        if cached is not None:
            row(f"`/api/v1/usage` p99 < 100 ms at {devices:,} devices, as deployed (answer cached; "
                "one worker, one connection)",
                f"p99 {cached.p99_ms:.1f} ms, p50 {cached.p50_ms:.1f} ms", cached.p99_ms < 100)
        if uncached is not None:
            row("the same, the first request after each run (answer not cached yet)",
                f"p99 {uncached.p99_ms:.1f} ms, p50 {uncached.p50_ms:.1f} ms (cache off)",
                uncached.p99_ms < 100,
                "Uncached, a request reads every device's period row, lease and remembered "
                "name (collector.reads.usage, ~40% in a profile) and serialises 2.4 MiB of JSON "
                "(json.dumps, ~50%). As deployed each worker pays this once per run (every 30 "
                "minutes), then answers from its cache (the row above). Fix, in api/ (not "
                "changed here): compute the answer once per run, e.g. when the first worker "
                "sees a new data_state, and share it through a file beside the databases; or "
                "page the device list.")
        b = api["browser"]
        if b.skipped:
            row(f"dashboard usable at {devices:,} devices", f"not measured: {b.skipped}", None)
        else:
            from bench.common import percentile

            frames = b.frame_ms.values
            frame_p99 = percentile(frames, 99)
            long_share = sum(1 for f in frames if f > LONG_FRAME_MS) / max(len(frames), 1)
            usable = (b.table_ms.median < DRAWN_MS and b.keystroke_ms.median < KEYSTROKE_MS
                      and b.frame_ms.median <= FRAME_MS and long_share <= LONG_FRAMES_SHARE)
            row(f"dashboard usable at {devices:,} devices (ours: table drawn < {DRAWN_MS / 1000:g} s, "
                f"a filter keystroke < {KEYSTROKE_MS} ms (median), scrolling: median frame <= "
                f"{FRAME_MS} ms and at most {LONG_FRAMES_SHARE:.0%} of frames over "
                f"{LONG_FRAME_MS} ms)",
                f"table drawn in {fmt(b.table_ms.median / 1000, 2)} s; keystroke "
                f"{fmt(b.keystroke_ms.median, 0)} ms (max {fmt(b.keystroke_ms.max, 0)}); "
                f"emptying the filter {fmt(b.clear_ms.median, 0)} ms; sort "
                f"{fmt(b.sort_ms.median, 0)} ms; scrolling frames median {fmt(b.frame_ms.median, 1)} ms, "
                f"p99 {fmt(frame_p99, 1)} ms, {long_share:.0%} over {LONG_FRAME_MS} ms",
                usable,
                "Per input event api/static/dashboard.js filters every device (its search text "
                "is built once per answer), sorts the matches and rebuilds the rows it draws (the "
                "first 200, more on request; all 10,000, ~140,000 elements, before issue 15). "
                "What is left is mostly rebuilding and laying out those rows on a loaded machine; "
                "fewer rows at once, or reusing row elements, would cut it further.")
    return rows
