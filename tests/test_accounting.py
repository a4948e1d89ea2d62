"""The accounting rules, one by one, then as properties over invented histories."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.accounting import (
    MISSING_BASELINE_KEEP_SECONDS,
    WRAP_32,
    Baseline,
    RouterPoll,
    RouterState,
    UptimeMark,
    account_router,
    bucket,
    counter_delta,
    max_bytes_per_second,
)
from collector.parse import StationSample, WanSample
from collector.periods import period_containing, period_for_label
from collector.schema import WAN

UTC = timezone.utc  # datetime.UTC is Python 3.11+

T = 1_800_000_000.0
A = "aa:bb:cc:dd:ee:01"
B = "aa:bb:cc:dd:ee:02"


def known(baselines=None, uptime=None, last_ap_at=T):
    return RouterState(baselines=baselines or {}, uptime=uptime, ap_known=True, last_ap_at=last_ap_at)


def amounts(outcome):
    return {d.device: (d.rx_bytes, d.tx_bytes) for d in outcome.deltas}


# --- counter_delta ---------------------------------------------------------------------------


def test_counter_delta_rules():
    assert counter_delta(100, 150, bits=64, reset=False) == (50, "delta")
    assert counter_delta(100, 40, bits=64, reset=False) == (40, "reset")
    assert counter_delta(WRAP_32 - 10, 5, bits=32, reset=False) == (15, "wrap")
    assert counter_delta(100, 150, bits=32, reset=True) == (150, "reset")


# --- rules 1-3: baselines, first contact, new stations --------------------------------------


def test_first_contact_records_baselines_and_counts_nothing():
    poll = RouterPoll(stations=[StationSample(A, 500, 900)], stations_at=T, wan=WanSample(10, 20, 100),
                      wan_at=T)
    out = account_router("r1", RouterState(), poll)
    assert amounts(out) == {WAN: (0, 0), A: (0, 0)}
    assert out.baselines == {WAN: Baseline(10, 20, T), A: Baseline(500, 900, T)}
    assert out.uptime == UptimeMark(100, T)


def test_new_station_on_known_router_counts_in_full():
    out = account_router("r1", known(), RouterPoll(stations=[StationSample(A, 300, 700, 60)],
                                                   stations_at=T + 1800))
    assert amounts(out) == {A: (300, 700)}
    assert out.deltas[0].how == "new station"


def test_station_that_left_and_came_back_counts_in_full():
    state = known({A: Baseline(1000, 2000, T)})
    gone = account_router("r1", state, RouterPoll(stations=[], stations_at=T + 1800))
    assert gone.baselines == {}
    back = account_router("r1", known(gone.baselines, last_ap_at=T + 1800),
                          RouterPoll(stations=[StationSample(A, 1500, 2500)], stations_at=T + 3600))
    assert amounts(back) == {A: (1500, 2500)}


def test_baselines_are_per_router_for_the_same_mac():
    """Roaming: the same MAC on two routers never shares a baseline."""
    r1 = account_router("r1", known({A: Baseline(1000, 1000, T)}),
                        RouterPoll(stations=[StationSample(A, 1100, 1200)], stations_at=T + 60))
    r2 = account_router("r2", known({A: Baseline(50, 50, T)}),
                        RouterPoll(stations=[StationSample(A, 80, 90)], stations_at=T + 60))
    assert amounts(r1) == {A: (100, 200)}
    assert amounts(r2) == {A: (30, 40)}


# --- rule 4: resets and wraps ---------------------------------------------------------------


def test_64_bit_decrease_is_a_reset_of_both_counters():
    out = account_router("r1", known({A: Baseline(1000, 1000, T)}),
                         RouterPoll(stations=[StationSample(A, 200, 5000)], stations_at=T + 1800))
    # rx went down, so both restarted: tx counts its new value too, not 5000 - 1000.
    assert amounts(out) == {A: (200, 5000)}
    assert out.deltas[0].how == "reset"


def test_32_bit_decrease_is_a_wrap():
    out = account_router("r1", known({WAN: Baseline(WRAP_32 - 100, 50, T)}),
                         RouterPoll(wan=WanSample(400, 60), wan_at=T + 1800), counter_bits=32)
    assert amounts(out) == {WAN: (500, 10)}
    assert out.deltas[0].how == "wrap"
    assert any("wrapped" in n for n in out.notes)


def test_32_bit_decrease_with_reboot_evidence_is_a_reset():
    state = known({WAN: Baseline(WRAP_32 - 100, 50, T)}, uptime=UptimeMark(5000, T))
    out = account_router("r1", state, RouterPoll(wan=WanSample(400, 60, 30), wan_at=T + 1800),
                         counter_bits=32)
    assert amounts(out) == {WAN: (400, 60)}
    assert out.deltas[0].how == "reboot"


# --- rule 5: evidence of a reset ------------------------------------------------------------


def test_uptime_shorter_than_elapsed_restarts_every_baseline_even_if_counters_grew():
    state = known({WAN: Baseline(100, 100, T), A: Baseline(10, 10, T)}, uptime=UptimeMark(50_000, T))
    poll = RouterPoll(stations=[StationSample(A, 400, 400, 500)], stations_at=T + 1800,
                      wan=WanSample(900, 900, 600), wan_at=T + 1800)
    out = account_router("r1", state, poll)
    assert amounts(out) == {WAN: (900, 900), A: (400, 400)}
    assert {d.how for d in out.deltas} == {"reboot"}
    assert any("rebooted" in n for n in out.notes)


def test_uptime_that_went_down_is_a_reboot_whatever_the_clock_says():
    # The clock claims only 10 s passed, but uptime fell from 5000 to 4000.
    state = known({WAN: Baseline(100, 100, T)}, uptime=UptimeMark(5000, T))
    out = account_router("r1", state, RouterPoll(wan=WanSample(300, 300, 4000), wan_at=T + 10))
    assert amounts(out) == {WAN: (300, 300)}


def test_reboot_seen_late_does_not_recount_baselines_taken_after_it():
    """Run k: WAN failed, AP answered after a reboot. Run k+1: uptime shows the reboot.

    The station baselines of run k are already post-reboot: counting them again
    in full would double count.
    """
    boot = T + 600
    state = known({WAN: Baseline(10_000, 10_000, T), A: Baseline(100, 100, T + 1800)},
                  uptime=UptimeMark(90_000, T), last_ap_at=T + 1800)
    now = T + 3600
    poll = RouterPoll(stations=[StationSample(A, 150, 180)], stations_at=now,
                      wan=WanSample(700, 800, int(now - boot)), wan_at=now)
    out = account_router("r1", state, poll)
    assert amounts(out) == {WAN: (700, 800), A: (50, 80)}


def test_reassociation_counts_in_full_even_when_larger():
    state = known({A: Baseline(1000, 1000, T)})
    out = account_router("r1", state, RouterPoll(stations=[StationSample(A, 1500, 1600, 120)],
                                                 stations_at=T + 1800))
    assert amounts(out) == {A: (1500, 1600)}
    assert out.deltas[0].how == "re-associated"


def test_connected_seconds_covering_the_interval_is_an_ordinary_delta():
    state = known({A: Baseline(1000, 1000, T)})
    out = account_router("r1", state, RouterPoll(stations=[StationSample(A, 1500, 1600, 1801)],
                                                 stations_at=T + 1800))
    assert amounts(out) == {A: (500, 600)}


def test_station_missing_from_an_answer_with_rejected_lines_keeps_its_baseline():
    state = known({A: Baseline(1000, 1000, T), B: Baseline(7, 7, T)})
    out = account_router("r1", state, RouterPoll(stations=[StationSample(B, 8, 8)], stations_at=T + 1800,
                                                 stations_complete=False))
    assert out.baselines[A] == Baseline(1000, 1000, T)
    back = account_router("r1", known(out.baselines, last_ap_at=T + 1800),
                          RouterPoll(stations=[StationSample(A, 1300, 1100)], stations_at=T + 3600))
    assert amounts(back) == {A: (300, 100)}


def test_missing_station_of_a_router_with_connected_seconds_is_judged_on_its_return():
    state = known({A: Baseline(1000, 1000, T, connected_hint=True)})
    missing = account_router("r1", state, RouterPoll(stations=[], stations_at=T + 1800))
    assert missing.baselines[A] == Baseline(1000, 1000, T, connected_hint=True)
    later = known(missing.baselines, last_ap_at=T + 1800)
    # Associated since before the baseline was read: the same association, a delta.
    same = account_router("r1", later, RouterPoll(stations=[StationSample(A, 1300, 1100, 7200)],
                                                  stations_at=T + 3600))
    assert amounts(same) == {A: (300, 100)}
    # Associated after it: a new association, counted in full.
    new = account_router("r1", later, RouterPoll(stations=[StationSample(A, 300, 100, 900)],
                                                 stations_at=T + 3600))
    assert amounts(new) == {A: (300, 100)} and new.deltas[0].how == "re-associated"


def test_missing_station_without_connected_seconds_has_left():
    state = known({A: Baseline(1000, 1000, T, connected_hint=False)})
    out = account_router("r1", state, RouterPoll(stations=[], stations_at=T + 1800))
    assert A not in out.baselines


def test_a_missing_stations_baseline_is_kept_for_a_week_at_most():
    state = known({A: Baseline(1000, 1000, T, connected_hint=True)})
    week = MISSING_BASELINE_KEEP_SECONDS
    kept = account_router("r1", state, RouterPoll(stations=[], stations_at=T + week))
    assert A in kept.baselines
    gone = account_router("r1", state, RouterPoll(stations=[], stations_at=T + week + 1800))
    assert A not in gone.baselines


# --- rule 6: plausibility ---------------------------------------------------------------------


@pytest.mark.parametrize("connected", [None, 60, 10**9, 2**63 - 1])
def test_a_new_stations_elapsed_time_is_at_most_the_time_since_the_last_answer(connected):
    """Review item 2: a router's claim of connected seconds never lifts the rate cap."""
    rate = max_bytes_per_second(100)  # 12.5 MB/s
    limit = int(rate * (1800 + 2))
    state = known(last_ap_at=T)
    at = T + 1800
    fits = account_router("r1", state, RouterPoll(stations=[StationSample(A, limit, 0, connected)],
                                                  stations_at=at), max_rate=rate)
    over = account_router("r1", state, RouterPoll(stations=[StationSample(A, limit + 1, 0, connected)],
                                                  stations_at=at), max_rate=rate)
    if connected == 60:  # shorter than the interval: its own, smaller bound
        assert amounts(fits)[A] == (0, 0)
    else:
        assert amounts(fits)[A] == (limit, 0)
    assert amounts(over)[A] == (0, 0) and over.deltas[0].how == "implausible"



def test_implausible_delta_counts_zero_and_rebaselines():
    rate = max_bytes_per_second(100)  # 12.5 MB/s
    state = known({WAN: Baseline(0, 0, T)})
    out = account_router("r1", state, RouterPoll(wan=WanSample(10**12, 1000), wan_at=T + 1800),
                         max_rate=rate)
    assert amounts(out) == {WAN: (0, 1000)}
    assert out.baselines[WAN] == Baseline(10**12, 1000, T + 1800)
    assert any("above max_rate_mbps" in n for n in out.notes)


def test_rate_cap_allows_exactly_the_maximum():
    rate = max_bytes_per_second(8)  # 1 MB/s
    state = known({WAN: Baseline(0, 0, T)})
    limit = int(rate * (100 + 2))  # elapsed plus the measurement slack
    out = account_router("r1", state, RouterPoll(wan=WanSample(limit, 0), wan_at=T + 100), max_rate=rate)
    assert amounts(out) == {WAN: (limit, 0)}


# --- rule 7: failures -------------------------------------------------------------------------


def test_failed_endpoints_leave_baselines_alone_and_gap_is_counted_later():
    state = known({WAN: Baseline(100, 100, T), A: Baseline(5, 5, T)})
    nothing = account_router("r1", state, RouterPoll())
    assert nothing.deltas == [] and nothing.baselines == dict(state.baselines)
    later = account_router("r1", state, RouterPoll(wan=WanSample(1100, 600), wan_at=T + 3 * 3600,
                                                   stations=[StationSample(A, 55, 65)],
                                                   stations_at=T + 3 * 3600))
    assert amounts(later) == {WAN: (1000, 500), A: (50, 60)}


def test_wan_only_poll_keeps_station_baselines():
    state = known({WAN: Baseline(100, 100, T), A: Baseline(5, 5, T)})
    out = account_router("r1", state, RouterPoll(wan=WanSample(200, 200), wan_at=T + 60))
    assert out.baselines[A] == Baseline(5, 5, T)


# --- rule 8: periods --------------------------------------------------------------------------


def ts(*args, zone=UTC):
    return datetime(*args, tzinfo=zone).timestamp()


def test_poll_after_local_midnight_on_the_first_is_in_the_new_period():
    berlin = ZoneInfo("Europe/Berlin")
    at = ts(2026, 11, 30, 23, 30)  # 00:30 on 1 December in Berlin, still November in UTC
    assert period_containing(at, berlin).label == "2026-12"
    assert period_containing(at, ZoneInfo("UTC")).label == "2026-11"


def test_month_start_day():
    utc = ZoneInfo("UTC")
    assert period_containing(ts(2026, 11, 14, 23, 59), utc, 15).label == "2026-10"
    p = period_containing(ts(2026, 11, 15, 0, 0), utc, 15)
    assert (p.label, p.start.isoformat(), p.end.isoformat()) == (
        "2026-11", "2026-11-15T00:00:00+00:00", "2026-12-15T00:00:00+00:00")
    assert period_containing(ts(2027, 1, 3), utc, 15).label == "2026-12"


def test_period_across_daylight_saving_change():
    berlin = ZoneInfo("Europe/Berlin")
    p = period_for_label("2026-10", berlin)
    assert p.start.utcoffset().total_seconds() == 7200  # CEST
    assert p.end.utcoffset().total_seconds() == 3600  # CET
    assert period_containing(ts(2026, 10, 31, 23, 30), berlin).label == "2026-11"  # 00:30 CET


@pytest.mark.parametrize("label", ["2026-13", "2026-1", "26-01", "2026/01", "abcd-ef", ""])
def test_bad_period_labels(label):
    with pytest.raises(ValueError):
        period_for_label(label, ZoneInfo("UTC"))


def test_bucket_splits_by_day_and_period():
    from collector.accounting import Delta

    utc = ZoneInfo("UTC")
    deltas = [
        Delta("r1", A, 1, 2, ts(2026, 11, 30, 23, 0), "delta"),
        Delta("r1", A, 10, 20, ts(2026, 11, 30, 23, 30), "delta"),
        Delta("r1", A, 100, 200, ts(2026, 12, 1, 0, 0), "delta"),
    ]
    rows = {(u.period, u.day): (u.rx_bytes, u.tx_bytes) for u in bucket(deltas, utc)}
    assert rows == {("2026-11", "2026-11-30"): (11, 22), ("2026-12", "2026-12-01"): (100, 200)}


# --- properties -------------------------------------------------------------------------------

EVENTS = st.sampled_from(["traffic", "traffic", "traffic", "reboot", "leave", "join", "reassociate",
                          "fail", "fail-ap", "hide", "reject"])


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(st.tuples(EVENTS, st.integers(0, 2**31), st.integers(0, 2**31),
                              st.sampled_from([A, B])), min_size=1, max_size=40),
    bits=st.sampled_from([32, 64]),
)
def test_totals_equal_truth_with_resets_wraps_and_gaps(events, bits):
    """A router whose counters reset, wrap and go unanswered still totals exactly the truth.

    The model: every interval is 30 minutes; a disruptive event (reboot, leave,
    re-association) happens a minute after a successful poll, so the traffic
    before it was seen; then traffic flows; then a poll, which may fail.
    Uptime and connected seconds are always reported (the scripts we ship do). A
    station may also be missing from one answer while it stays associated: left out
    of a complete answer (a radio's dump raced a wifi reload) or with its line
    rejected (an answer that is not complete).
    """
    modulo = 2**bits
    now = T
    boot = T - 10_000
    wan = [0, 0]
    stations = {A: [0, 0, T - 500]}  # mac -> rx, tx, associated_at
    truth = {WAN: [0, 0], A: [0, 0], B: [0, 0]}
    state = RouterState()
    last_ok = True

    def poll(ap_ok=True, wan_ok=True, hidden=None, complete=True):
        return RouterPoll(
            stations=[StationSample(m, s[0] % modulo, s[1] % modulo, int(now - s[2]))
                      for m, s in stations.items() if m != hidden] if ap_ok else None,
            stations_at=now,
            stations_complete=complete,
            wan=WanSample(wan[0] % modulo, wan[1] % modulo, int(now - boot)) if wan_ok else None,
            wan_at=now,
        )

    def apply(p):
        nonlocal state
        out = account_router("r1", state, p, counter_bits=bits)
        for d in out.deltas:
            assert d.rx_bytes >= 0 and d.tx_bytes >= 0
            truth_counted[d.device][0] += d.rx_bytes
            truth_counted[d.device][1] += d.tx_bytes
        state = RouterState(out.baselines, out.uptime,
                            ap_known=state.ap_known or p.stations is not None,
                            last_ap_at=p.stations_at if p.stations is not None else state.last_ap_at)

    truth_counted = {WAN: [0, 0], A: [0, 0], B: [0, 0]}
    apply(poll())  # first contact
    for kind, up, down, mac in events:
        if last_ok and kind == "reboot":
            now += 60
            boot = now
            wan = [0, 0]
            for s in stations.values():
                s[:] = [0, 0, now]
        elif last_ok and kind == "leave":
            stations.pop(mac, None)
        elif kind == "join" and mac not in stations:
            now += 60
            stations[mac] = [0, 0, now]
        elif last_ok and kind == "reassociate" and mac in stations:
            now += 60
            stations[mac] = [0, 0, now]
        # Traffic; one interval's worth stays below 2^31 so a 32-bit counter wraps at most once.
        if mac in stations:
            stations[mac][0] += up // 2
            stations[mac][1] += down // 2
            truth[mac][0] += up // 2
            truth[mac][1] += down // 2
        wan[0] += down // 2
        wan[1] += up // 2
        truth[WAN][0] += down // 2
        truth[WAN][1] += up // 2
        now = now + 1800 - (now - T) % 1800
        if kind == "fail":
            last_ok = False  # the poll fails: nothing changes, the gap is counted later
            continue
        if kind == "fail-ap":
            apply(poll(ap_ok=False))
            last_ok = False
            continue
        if kind in ("hide", "reject"):
            apply(poll(hidden=mac, complete=kind == "hide"))
            last_ok = mac not in stations  # its traffic so far is not yet counted
            continue
        apply(poll())
        last_ok = True
    if not last_ok:
        now += 1800
        apply(poll())
    # 32-bit counters only stay exact when a poll comes before they can wrap twice.
    if bits == 64 or sum(1 for e in events if e[0] in ("fail", "fail-ap", "hide", "reject")) == 0:
        assert truth_counted == truth


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                          st.one_of(st.none(), st.integers(0, 10**6)),
                          st.one_of(st.none(), st.integers(0, 10**6)),
                          st.floats(-4000, 4000)), min_size=1, max_size=30),
       st.sampled_from([32, 64]))
def test_no_negative_deltas_on_arbitrary_counters_and_clocks(readings, bits):
    state = RouterState()
    now = T
    for rx, tx, conn, uptime, step in readings:
        now += step  # clocks may even go backwards
        p = RouterPoll(stations=[StationSample(A, rx, tx, conn)], stations_at=now,
                       wan=WanSample(rx, tx, uptime), wan_at=now)
        out = account_router("r1", state, p, counter_bits=bits, max_rate=max_bytes_per_second(10**6))
        assert all(d.rx_bytes >= 0 and d.tx_bytes >= 0 for d in out.deltas)
        assert all(d.rx_bytes <= max(rx, 2**32) and d.tx_bytes <= max(tx, 2**32) for d in out.deltas)
        state = RouterState(out.baselines, out.uptime, ap_known=True, last_ap_at=now)
