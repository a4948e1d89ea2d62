#!/bin/sh
# dhcp.cgi - dnsmasq's DHCP lease file, as is, for netstat-collect (which
# uses it to name devices). POSIX sh for OpenWrt's BusyBox ash; uses uci
# when it is there.
#
# Output: a CGI header, a blank line, then the lease file unchanged:
#     EXPIRY MAC IP HOSTNAME CLIENT_ID     (an IPv4 lease; "*" means none)
# plus dnsmasq's "duid ..." line and DHCPv6 leases, which the collector skips.
# An empty lease file is a 200 with an empty body.
# On failure: a "Status: 500 ..." header and one line "error: WHAT IS MISSING".
#
# The lease file is the first of: NETSTAT_LEASE_FILE, the leasefile option
# of the first dnsmasq section (`uci -q get dhcp.@dnsmasq[0].leasefile`),
# /tmp/dhcp.leases.
#
# Overrides (tests; uhttpd clears a CGI's environment, so not on a router):
#     NETSTAT_LEASE_FILE  the lease file
#     PATH                where uci and cat are looked up

fail() {
	# $1: the message. Nothing has been printed before this.
	printf 'Status: 500 Internal Server Error\nContent-Type: text/plain\n\nerror: %s\n' "$1"
	exit 1
}

file=${NETSTAT_LEASE_FILE:-}
if [ -z "$file" ] && command -v uci >/dev/null 2>&1; then
	file=$(uci -q get 'dhcp.@dnsmasq[0].leasefile' 2>/dev/null)
fi
file=${file:-/tmp/dhcp.leases}

# dnsmasq creates the file when it starts: no file means no DHCP server.
[ -f "$file" ] || fail "lease file $file does not exist (is dnsmasq running?)"
[ -r "$file" ] || fail "lease file $file is not readable"
# Read it whole before the header, so that a failed read is still a 500.
leases=$(cat "$file") || fail "cannot read lease file $file"

printf 'Content-Type: text/plain\n\n'
[ -z "$leases" ] || printf '%s\n' "$leases"
