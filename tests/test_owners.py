"""Per-owner totals (collector.reads.owners) over databases written by the collector's own commit.

The property: whatever the devices, their owners (some none, some changed between runs)
and their traffic across periods and routers, each period's owner groups add up exactly to
that period's device totals, the WAN is in none of them, and the devices without an owner
are one group, present whenever such a device has traffic.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from collector import reads, storage
from collector.accounting import Usage
from collector.config import DeviceLabel
from collector.periods import period_for_label
from collector.schema import STATS_DB, WAN

ZONE = ZoneInfo("UTC")
PERIODS = ("2026-10", "2026-11", "2026-12")
MACS = [f"02:00:00:00:00:{i:02x}" for i in range(1, 9)]
OWNERS = ("Anna", "Ben", "Zoë", "anna")  # "anna" is not "Anna": owners are compared as written
BYTES = st.integers(0, 2**40)

labels = st.dictionaries(
    st.sampled_from(MACS),
    st.builds(DeviceLabel, name=st.sampled_from(["", "phone", "tv"]),
              owner=st.sampled_from(("",) + OWNERS)),
)
usage_rows = st.lists(
    st.tuples(st.sampled_from(PERIODS), st.sampled_from(["r1", "r2"]), st.sampled_from([*MACS, WAN]),
              BYTES, BYTES),
    max_size=25,
)
runs = st.lists(st.tuples(usage_rows, labels), min_size=1, max_size=4)


def _commit(conn, path: Path, at: float, rows, run_labels: dict[str, DeviceLabel]) -> None:
    usage = [Usage(period, f"{period}-15", router, device, rx, tx, at)
             for period, router, device, rx, tx in rows]
    update = storage.RunUpdate(started_at=at, finished_at=at, current_period_at=at, usage=usage,
                               baselines={}, uptimes={}, endpoints=[], labels=run_labels)
    storage.commit_stats(conn, path, update, ZONE, 1)


@settings(max_examples=60, deadline=None)
@given(runs)
def test_owner_totals_add_up_to_the_device_totals_in_every_period(runs):
    # What the runs moved, summed here: period -> device -> [rx, tx].
    moved: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for rows, _ in runs:
        for period, _router, device, rx, tx in rows:
            moved[period][device][0] += rx
            moved[period][device][1] += tx
    last_labels = runs[-1][1]  # every run replaces the names and owners: the last one's count

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / STATS_DB
        writer = storage.connect_writer(path)
        try:
            storage.migrate_stats(writer, path, ZONE, 1)
            for i, (rows, run_labels) in enumerate(runs):
                _commit(writer, path, 1.8e9 + i, rows, run_labels)
        finally:
            writer.close()
        conn = reads.open_readonly(Path(tmp))
        try:
            answers = {label: reads.owners(conn, period_for_label(label, ZONE, 1), reads.read_settings(conn))
                       for label in PERIODS}
            usages = {label: reads.usage(conn, period_for_label(label, ZONE, 1), reads.read_settings(conn))
                      for label in PERIODS}
        finally:
            conn.close()

    for label in PERIODS:
        devices = {d: v for d, v in moved.get(label, {}).items() if d != WAN}
        answer = answers[label]
        groups = answer["owners"]
        # Exactly the devices' totals, the WAN in none of them.
        rx, tx = sum(v[0] for v in devices.values()), sum(v[1] for v in devices.values())
        expected_total = {"rx_bytes": rx, "tx_bytes": tx, "download_bytes": tx, "upload_bytes": rx,
                          "total_bytes": rx + tx}
        assert answer["total"] == expected_total, label
        for field, value in expected_total.items():
            assert sum(g[field] for g in groups) == value, (label, field)
        assert sum(g["devices"] for g in groups) == len(devices)
        assert sorted(m for g in groups for m in g["macs"]) == sorted(devices)
        assert all(g["devices"] == len(g["macs"]) for g in groups)
        # Each group is its owner's devices, by the last run's configuration.
        expected: dict[str | None, set[str]] = defaultdict(set)
        for device in devices:
            expected[last_labels.get(device, DeviceLabel()).owner or None].add(device)
        assert {g["owner"]: set(g["macs"]) for g in groups} == expected, label
        for g in groups:
            assert (g["rx_bytes"], g["tx_bytes"]) == (sum(devices[m][0] for m in g["macs"]),
                                                      sum(devices[m][1] for m in g["macs"]))
        # One group for "no owner", there whenever a device with traffic has none.
        nobody = [g for g in groups if g["owner"] is None]
        assert len(nobody) == (1 if None in expected else 0)
        assert [g["total_bytes"] for g in groups] == sorted((g["total_bytes"] for g in groups), reverse=True)
        # usage() shows the same names and owners, null where none is set.
        configured = {d: last_labels.get(d, DeviceLabel()) for d in devices}
        assert {c["mac"]: (c["name"], c["owner"]) for c in usages[label]["clients"]} == {
            d: (c.name or None, c.owner or None) for d, c in configured.items()}


def test_a_file_from_before_names_has_no_names_and_one_group(tmp_path):
    """Schema 2 had no `devices` table: every name and owner is null, and nothing is dropped."""
    import sqlite3

    path = tmp_path / STATS_DB
    writer = storage.connect_writer(path)
    storage.migrate_stats(writer, path, ZONE, 1)
    _commit(writer, path, 1.8e9, [("2026-11", "r1", MACS[0], 10, 20), ("2026-11", "r2", MACS[1], 1, 2)],
            {MACS[0]: DeviceLabel("phone", "Anna")})
    writer.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE devices")
    conn.commit()
    conn.close()
    conn = reads.open_readonly(tmp_path)
    try:
        period = period_for_label("2026-11", ZONE, 1)
        usage = reads.usage(conn, period, reads.read_settings(conn))
        owners = reads.owners(conn, period, reads.read_settings(conn))
    finally:
        conn.close()
    assert [(c["mac"], c["name"], c["owner"]) for c in usage["clients"]] == [
        (MACS[0], None, None), (MACS[1], None, None)]
    assert [(g["owner"], g["devices"], g["total_bytes"]) for g in owners["owners"]] == [(None, 2, 33)]


def test_a_period_without_traffic_has_no_groups_and_zero_totals(tmp_path):
    path = tmp_path / STATS_DB
    writer = storage.connect_writer(path)
    storage.migrate_stats(writer, path, ZONE, 1)
    _commit(writer, path, 1.8e9, [("2026-11", "r1", WAN, 10, 20)], {MACS[0]: DeviceLabel("", "Anna")})
    writer.close()
    conn = reads.open_readonly(tmp_path)
    try:
        answer = reads.owners(conn, period_for_label("2026-11", ZONE, 1), reads.read_settings(conn))
    finally:
        conn.close()
    assert (answer["owners"], set(answer["total"].values())) == ([], {0})
