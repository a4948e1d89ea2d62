#!/bin/sh
# wan.cgi - the WAN interface's byte counters and the router's uptime, for
# netstat-collect. POSIX sh for OpenWrt's BusyBox ash; needs awk, and uses
# ubus, jsonfilter and uci when they are there.
#
# Output: a CGI header, a blank line, then
#     wan: RX_BYTES TX_BYTES
#     uptime: SECONDS
# RX_BYTES is what the WAN device received (the download), TX_BYTES what it
# sent; both from /proc/net/dev. SECONDS is the whole part of /proc/uptime.
# On failure: a "Status: 500 ..." header and one line "error: WHAT IS MISSING".
#
# The WAN device is the first of, in this order:
#   1. WAN_DEVICE from the environment, else a line WAN_DEVICE=NAME in the
#      config file (uhttpd clears a CGI's environment: on a router, use the file);
#   2. `ubus call network.interface.wan status`: l3_device, else device;
#   3. `uci -q get network.wan.device`, else network.wan.ifname;
#   4. an interface literally named "wan", if /proc/net/dev has one.
# The first name found is used, and must be in /proc/net/dev: falling through
# to another candidate would switch to another device's counters silently.
#
# Overrides (tests; PATH also decides which ubus, jsonfilter and uci are run):
#     WAN_DEVICE            the WAN device, see above
#     NETSTAT_CONF          config file (default /etc/netstat-collect.conf)
#     NETSTAT_PROC_NET_DEV  interface counters (default /proc/net/dev)
#     NETSTAT_PROC_UPTIME   uptime (default /proc/uptime)

CONF=${NETSTAT_CONF:-/etc/netstat-collect.conf}
PROC_NET_DEV=${NETSTAT_PROC_NET_DEV:-/proc/net/dev}
PROC_UPTIME=${NETSTAT_PROC_UPTIME:-/proc/uptime}

fail() {
	# $1: the message. Nothing has been printed before this.
	printf 'Status: 500 Internal Server Error\nContent-Type: text/plain\n\nerror: %s\n' "$1"
	exit 1
}

have() {
	command -v "$1" >/dev/null 2>&1
}

# The value of the last KEY=VALUE line in the config file; surrounding blanks
# and one pair of matching quotes removed. The file is read, not sourced.
conf_value() {
	[ -r "$CONF" ] || return 0
	awk -v key="$1" -v q="'" '
		{ sub(/\r$/, ""); sub(/^[ \t]+/, "") }
		substr($0, 1, length(key) + 1) == key "=" { v = substr($0, length(key) + 2) }
		END {
			sub(/[ \t]+$/, "", v)
			first = substr(v, 1, 1)
			if (length(v) >= 2 && (first == "\"" || first == q) && substr(v, length(v)) == first)
				v = substr(v, 2, length(v) - 2)
			print v
		}' "$CONF"
}

# A top-level string field of the JSON that ubus printed.
json_field() {
	if have jsonfilter; then
		jsonfilter -s "$1" -e "@.$2" 2>/dev/null
	else
		# ubus pretty-prints one key per line, indented by one tab per
		# level: a single leading blank means a top-level key.
		printf '%s\n' "$1" | sed -n "s/^[[:space:]]\"$2\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" |
			awk 'NR == 1'
	fi
}

# "RX TX" of device $1 from /proc/net/dev; nothing if it is not there.
# Lines look like "  eth0: 123 ..." or, with big counters, "eth0:123 ...".
# Counters stay strings: awk arithmetic would round those past 2^53.
dev_counters() {
	awk -v dev="$1" '
		{
			line = $0
			sub(/^[ \t]+/, "", line)
			i = index(line, ":")
			if (i == 0 || substr(line, 1, i - 1) != dev) next
			if (split(substr(line, i + 1), f) >= 9) { print f[1], f[9]; exit }
		}' "$PROC_NET_DEV"
}

dev=${WAN_DEVICE:-}
from="WAN_DEVICE"
if [ -z "$dev" ]; then
	dev=$(conf_value WAN_DEVICE)
	from="WAN_DEVICE in $CONF"
fi
if [ -z "$dev" ] && have ubus && status=$(ubus call network.interface.wan status 2>/dev/null); then
	for field in l3_device device; do
		dev=$(json_field "$status" "$field")
		from="ubus network.interface.wan $field"
		[ -z "$dev" ] || break
	done
fi
if [ -z "$dev" ] && have uci; then
	for option in device ifname; do
		dev=$(uci -q get "network.wan.$option" 2>/dev/null)
		from="uci network.wan.$option"
		[ -z "$dev" ] || break
	done
fi
if [ -z "$dev" ]; then
	dev=wan
	from=""
fi

[ -r "$PROC_NET_DEV" ] || fail "cannot read $PROC_NET_DEV"
counters=$(dev_counters "$dev")
if [ -z "$counters" ]; then
	[ -n "$from" ] || fail "no WAN device found: set WAN_DEVICE=NAME in $CONF (no ubus or uci answer, and no interface named wan in $PROC_NET_DEV)"
	fail "WAN device $dev (from $from) is not in $PROC_NET_DEV"
fi

uptime=
[ -r "$PROC_UPTIME" ] && read -r uptime _ <"$PROC_UPTIME"
uptime=${uptime%%.*}
case $uptime in
'' | *[!0-9]*) fail "no uptime in $PROC_UPTIME" ;;
esac

printf 'Content-Type: text/plain\n\nwan: %s\nuptime: %s\n' "$counters" "$uptime"
