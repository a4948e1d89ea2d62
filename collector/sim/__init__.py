"""Simulated routers, crash points and the demo: what the tests, the benchmarks and the
`simulate` and `demo` commands run against instead of real hardware.

- `routers`: a fleet of simulated OpenWrt routers served over HTTP on 127.0.0.1, with the
  real formats, their quirks, and faults from a table;
- `faults`: the named points where `NETSTAT_CRASH_AT` kills a run (the crash matrix);
- `demo`: `netstat-collect demo`, a simulated day collected and checked against the truth.

Installed with the package: `simulate` and `demo` are user commands.
"""
