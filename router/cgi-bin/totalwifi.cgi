#!/bin/sh
# totalwifi.cgi - byte counters of every Wi-Fi station on this router, for
# netstat-collect. POSIX sh for OpenWrt's BusyBox ash; needs iw and awk.
#
# Output: a CGI header, a blank line, then one line per station associated to
# any access-point interface of any radio (2.4 and 5 GHz, every SSID):
#     MAC RX_BYTES TX_BYTES CONNECTED_SECONDS
# MAC is lowercase. RX_BYTES is what the AP received from the station (the
# device's upload), TX_BYTES what it sent to it (the download), and
# CONNECTED_SECONDS the time since the station associated. No station at all
# is a 200 with an empty body.
# On failure: a "Status: 500 ..." or "Status: 503 ..." header and one line
# "error: WHAT IS MISSING".
#
# Overrides, for tests only (uhttpd clears the environment of a CGI and sets
# PATH to /sbin:/usr/sbin:/bin:/usr/bin):
#     PATH    where iw and awk are looked up; tests put a stub iw first.

fail() {
	# $1: HTTP status; $2: the message. Nothing has been printed before this.
	printf 'Status: %s\nContent-Type: text/plain\n\nerror: %s\n' "$1" "$2"
	exit 1
}

command -v iw >/dev/null 2>&1 || fail "500 Internal Server Error" "iw not found in PATH (opkg install iw)"
command -v awk >/dev/null 2>&1 || fail "500 Internal Server Error" "awk not found in PATH"

devs=$(iw dev 2>/dev/null) || fail "500 Internal Server Error" "iw dev failed"

# Only interfaces of type AP (one per SSID and radio) and AP/VLAN (stations
# moved to a per-station VLAN or WDS are listed there, not on their AP). A
# client-mode uplink would list the upstream router as a "station", and mesh
# peers are routers too: neither is a device to account for.
ifaces=$(printf '%s\n' "$devs" | awk '
	$1 == "Interface" { name = $2 }
	$1 == "type" && name != "" {
		if ($2 == "AP" || $2 == "AP/VLAN") print name
		name = ""
	}')

# Collect every dump before printing anything, so that a failure can still
# be reported with an error status instead of a half-written 200.
dump=
for iface in $ifaces; do
	# An interface can vanish between the two calls (wifi reload): report a
	# temporary failure rather than a list that silently lacks its stations.
	out=$(iw dev "$iface" station dump 2>/dev/null) ||
		fail "503 Service Unavailable" "iw dev $iface station dump failed"
	dump="$dump$out
"
done

# iw prints a "Station MAC (on IFACE)" line, then indented "key:<TAB>value"
# lines. Counters are kept as strings: awk arithmetic would turn counters
# past 2^53 into floats. A MAC seen twice (a stale entry left on one
# interface while it roams to another) is printed once, first seen wins,
# because the collector rejects a station listed twice.
stations=$(printf '%s' "$dump" | awk '
	function flush() {
		if (mac == "") return
		if (rx == "" || tx == "") {
			if (missing == "") missing = mac
		} else if (!(mac in seen)) {
			seen[mac] = 1
			line = mac " " rx " " tx
			if (ct != "") line = line " " ct
			lines[++n] = line
		}
		mac = ""
	}
	$1 == "Station" { flush(); mac = tolower($2); rx = ""; tx = ""; ct = ""; next }
	$1 == "rx" && $2 == "bytes:" { rx = $3 }
	$1 == "tx" && $2 == "bytes:" { tx = $3 }
	$1 == "connected" && $2 == "time:" { ct = $3 }
	END {
		flush()
		if (missing != "") { print missing; exit 2 }
		for (i = 1; i <= n; i++) print lines[i]
	}') || fail "500 Internal Server Error" "iw station dump has no rx/tx bytes for station $stations"

printf 'Content-Type: text/plain\n\n'
[ -z "$stations" ] || printf '%s\n' "$stations"
