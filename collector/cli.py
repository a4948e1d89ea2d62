"""The `netstat-collect` command: click wiring only.

Domain errors become exit codes here, once, by the code each exception class declares
(collector/errors.py): 0 all endpoints fetched and committed, 1 some router or endpoint
failed (the rest is committed), 2 bad usage or configuration (nothing written), 3
storage, lock or clock trouble (nothing written). Heavy imports (requests, sqlite work)
happen inside the commands, so `--help` stays fast on a small board.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from collector import DEFAULT_CONFIG, DEFAULT_DATA_DIR, DEFAULT_LOCK_WAIT_SECONDS
from collector.errors import EXIT_CONFIG, EXIT_PARTIAL, NetstatError


class ExitError(click.ClickException):
    """A ClickException with our own exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.exit_code = code

    @classmethod
    def of(cls, error: NetstatError, prefix: str = "") -> ExitError:
        """The domain error as the CLI ends with it: its message, its class's exit code."""
        return cls(prefix + str(error), error.exit_code)


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="NETSTAT_CONFIG",
    default=DEFAULT_CONFIG, show_default=True, show_envvar=True, help="routers.json to read.",
)
data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False), envvar="NETSTAT_DATA_DIR",
    default=DEFAULT_DATA_DIR, show_default=True, show_envvar=True,
    help="Directory holding network_stats.db and dhcp_leases.db.",
)


def _clock():
    """time.time, or a fixed time from NETSTAT_NOW (unix seconds): for tests and replays only."""
    fixed = os.environ.get("NETSTAT_NOW")
    if not fixed:
        return time.time
    try:
        value = float(fixed)
    except ValueError:
        raise ExitError(f"NETSTAT_NOW must be unix seconds, got {fixed!r}", EXIT_CONFIG) from None
    return lambda: value


def _load_config(path: str):
    from collector.config import load_config

    try:
        config = load_config(path)
    except NetstatError as e:
        raise ExitError.of(e) from None
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netstat-collect")
def cli() -> None:
    """Exact per-device monthly traffic accounting from OpenWrt routers."""


@cli.command("run-once")
@config_option
@data_dir_option
@click.option("--dry-run", is_flag=True, help="Fetch and compute, print what would be added, write nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Also print every device's delta.")
@click.option("--lock-wait", type=float, default=DEFAULT_LOCK_WAIT_SECONDS, show_default=True,
              help="Seconds to wait for another run to finish before giving up.")
def run_once_command(config_path: str, data_dir: str, dry_run: bool, verbose: bool, lock_wait: float) -> None:
    """Poll every configured router once and commit the deltas (for cron)."""
    from collector.run import run_once
    from collector.text import LINE_LIMIT, log_safe

    config = _load_config(config_path)
    try:
        result = run_once(config, Path(data_dir), now=_clock(), dry_run=dry_run, lock_wait=lock_wait)
    except NetstatError as e:
        raise ExitError.of(e) from None
    from datetime import datetime

    # A dated first line: cron appends every run to one log file.
    stamp = datetime.fromtimestamp(result.started_at, config.settings.zone()).isoformat(timespec="seconds")
    click.echo(f"run-once {stamp}{' (dry run)' if dry_run else ''}", err=True)
    # Router lines and notes quote what routers sent: escaped, as everything router-sent.
    for router in result.routers:
        click.echo(log_safe(router.line(), LINE_LIMIT), err=True)
    for note in result.notes:
        click.echo(log_safe(f"note: {note}", LINE_LIMIT), err=True)
    # Alerts and deliveries never change the exit code: it is about collecting.
    for alert in result.alerts:
        verb = "would raise" if dry_run else "raised"
        click.echo(log_safe(f"alert {verb}: {alert.title}", LINE_LIMIT), err=True)
    for sent in result.deliveries:
        outcome = "sent" if sent.error is None else f"FAILED ({sent.error}); retried next run"
        click.echo(log_safe(f"notify {sent.label}: {outcome}", LINE_LIMIT), err=True)
    if verbose or dry_run:
        for d in result.deltas:
            line = f"  {d.router} {d.device}: +{d.rx_bytes} rx +{d.tx_bytes} tx ({d.how})"
            click.echo(line, err=True)
    if dry_run:
        if not result.usage:
            click.echo("dry run: nothing would be added")
        for u in sorted(result.usage, key=lambda u: (u.period, u.router, u.device)):
            click.echo(f"dry run: period {u.period} day {u.day} router {u.router} {u.device}: "
                       f"would add rx {u.rx_bytes} tx {u.tx_bytes}")
    sys.exit(result.exit_code)


def _print_checks(checks, targets_bad: int = 0) -> None:
    for result in checks:
        click.echo(result.render())
    bad = sum(1 for c in checks if not c.ok)
    click.echo(f"{len(checks) - bad} endpoint(s) OK, {bad} with problems")
    sys.exit(EXIT_PARTIAL if bad or targets_bad else 0)


def _targets(config) -> list[tuple[str, str]]:
    """(URL, label) of every notification target in the configuration."""
    targets = config.alerts.targets if config.alerts else ()
    return [(t.url.reveal(), t.label) for t in targets]


def _check_targets(config) -> int:
    """Validate every notification URL with Apprise, sending nothing; how many problems.

    What run-once only warns about (an unreadable notify_file, a line that is no URL, a
    URL given twice) is a problem here: this is where the file gets fixed.
    """
    targets = _targets(config)
    file_problem = config.alerts.notify_problem if config.alerts else ""
    if file_problem:
        click.echo(f"notify file {config.alerts.notify_file}: PROBLEM: {file_problem}")
    if not targets:
        return 1 if file_problem else 0
    from collector.notify import validate

    problems = validate([url for url, _ in targets])
    for (_, label), problem in zip(targets, problems, strict=True):
        click.echo(f"notify {label}: " + ("OK (valid, nothing sent)" if problem is None
                                          else f"PROBLEM: {problem}"))
    bad = sum(1 for p in problems if p is not None)
    click.echo(f"{len(targets) - bad} notification target(s) OK, {bad} with problems")
    return bad + (1 if file_problem else 0)


@cli.command("check-router")
@click.argument("urls", nargs=-1, required=True)
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=10.0, show_default=True)
@click.option("--username", default="", help="ubus: the rpcd login.")
@click.option("--password-file", type=click.Path(dir_okay=False),
              help="ubus: the file holding the login's password.")
@click.option("--wan-device", default="", help="ubus, prometheus: the WAN device (ubus finds it itself).")
def check_router(urls: tuple[str, ...], timeout: float, username: str, password_file: str | None,
                 wan_device: str) -> None:
    """Fetch a router's endpoints once and validate them; writes nothing.

    A URL naming totalwifi.cgi, wan.cgi or dhcp.cgi checks that endpoint; a URL ending in
    /ubus reads the router through ubus (with --username and --password-file); one ending
    in /metrics reads prometheus-node-exporter-lua; any other URL is taken as the router's
    address and all three /cgi-bin/ scripts are checked.
    """
    from collector.check import check, routers_for_urls

    warnings: list[str] = []
    try:
        routers = routers_for_urls(list(urls), timeout, username=username,
                                   password_file=password_file, wan_device=wan_device,
                                   warnings=warnings)
    except NetstatError as e:
        raise ExitError.of(e) from None
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    _print_checks(check(routers))


@cli.command("check-config")
@config_option
def check_config(config_path: str) -> None:
    """Validate the configuration and every endpoint in it once; writes nothing."""
    from collector.check import check, routers_for_config

    config = _load_config(config_path)
    checks = check(routers_for_config(config))
    _print_checks(checks, _check_targets(config))


@cli.command("notify-test")
@config_option
def notify_test(config_path: str) -> None:
    """Send one test message to every notification target; say which failed and why.

    Writes nothing: the alert ledger is not touched. Exit 0 when every target took the
    message, 1 when some did not, 2 when there is no target to try.
    """
    import socket
    from datetime import datetime

    from collector.notify import Message, send_all

    config = _load_config(config_path)
    targets = _targets(config)
    if not targets:
        problem = config.alerts.notify_problem if config.alerts else ""
        raise ExitError(f"{config.path}: alerts.notify_file: no notification target to test "
                        f"({problem or 'put one Apprise URL per line in that file'})", EXIT_CONFIG)
    at = datetime.fromtimestamp(_clock()(), config.settings.zone()).strftime("%Y-%m-%d %H:%M %Z")
    body = (f"A test message from netstat-collect on {socket.gethostname()}, {at}. "
            "Alerts will reach you here.")
    if config.settings.public_url:
        body += f"\nDashboard: {config.settings.public_url}"
    try:
        sent = send_all([Message(url, label, "netstat-collect: test message", body)
                         for url, label in targets], config.alerts.deadline_seconds)
    except OSError as e:
        raise ExitError(f"cannot start the sending process: {e.strerror or e}", EXIT_PARTIAL) from None
    for outcome in sent:
        click.echo(f"{outcome.label}: " + ("sent" if outcome.error is None else f"FAILED ({outcome.error})"))
    bad = sum(1 for outcome in sent if outcome.error is not None)
    click.echo(f"{len(sent) - bad} target(s) took the message, {bad} failed")
    sys.exit(EXIT_PARTIAL if bad else 0)


@cli.command()
@data_dir_option
@click.option("--period", metavar="YYYY-MM", help="Billing period (default: the current one).")
@click.option("--by", "group", type=click.Choice(["device", "owner"]), default="device", show_default=True,
              help="One row per device, or per owner (devices without one as one group).")
@click.option("--format", "output", type=click.Choice(["table", "json", "csv"]), default=None,
              help="table (the default), json (the API's answer: /api/v1/usage or /api/v1/owners) "
                   "or csv (the API's ?format=csv).")
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
def report(data_dir: str, period: str | None, group: str, output: str | None, as_json: bool) -> None:
    """Show a period's WAN total and per-device (or per-owner) usage."""
    from collector import export, reads
    from collector.report import render_owners, render_usage
    from collector.text import terminal_json

    if as_json and output not in (None, "json"):
        raise click.UsageError(f"--json is --format json; it cannot go with --format {output}")
    output = "json" if as_json else output or "table"
    try:
        conn = reads.open_readonly(Path(data_dir))
    except NetstatError as e:
        raise ExitError.of(e) from None
    try:
        settings = reads.read_settings(conn)
        try:
            chosen = reads.resolve_period(settings, period, _clock()())
        except ValueError as e:
            raise ExitError(f"--period: {e}", EXIT_CONFIG) from None
        answer = (reads.owners if group == "owner" else reads.usage)(conn, chosen, settings)
    finally:
        conn.close()
    if output == "json":
        click.echo(terminal_json(answer))
    elif output == "csv":
        click.echo(export.owners_csv(answer) if group == "owner" else export.usage_csv(answer), nl=False)
    else:
        click.echo(render_owners(answer) if group == "owner" else render_usage(answer), nl=False)


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Keep the demo's databases here (default: a new temporary directory).")
@click.option("--rounds", type=click.IntRange(2, 10000), default=48, show_default=True,
              help="Collection rounds, 30 simulated minutes apart.")
def demo(data_dir: str | None, rounds: int) -> None:
    """Collect from simulated routers on 127.0.0.1 and print the monthly table."""
    from collector.sim.demo import run_demo

    sys.exit(run_demo(Path(data_dir) if data_dir else None, rounds, echo=click.echo))


@cli.command()
@click.option("--routers", "router_count", type=click.IntRange(1, 500), default=2, show_default=True)
@click.option("--stations", type=click.IntRange(0, 100000), default=5, show_default=True,
              help="Stations per router.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--write-config", type=click.Path(dir_okay=False),
              help="Write a routers.json pointing at the simulated routers here.")
@click.option("--latency", type=float, default=0.0, help="Seconds added to every answer.")
@click.option("--fault", multiple=True, metavar="ROUTER=MODE",
              help="Make a router misbehave: down, http500, slow, huge, garbage, hang, no-uptime.")
@click.option("--seconds", type=float, default=0, help="Stop after this long (default: run until Ctrl-C).")
@click.option("--source", type=click.Choice(["cgi", "ubus", "prometheus"]), default="cgi",
              show_default=True, help="How the written configuration reads the routers: our CGI "
              "scripts, ubus (/ubus) or prometheus-node-exporter-lua (/metrics); all are served.")
def simulate(router_count, stations, port, write_config, latency, fault, seconds, source) -> None:
    """Serve simulated routers on 127.0.0.1 whose devices transfer data in real time."""
    import json

    from collector.sim.routers import build_fleet

    fleet = build_fleet(router_count, stations, real_time=True)
    for router in fleet.routers.values():
        router.delay = latency
    for item in fault:
        key, _, mode = item.partition("=")
        if key not in fleet.routers:
            raise ExitError(f"--fault: no router {key!r}; routers are {', '.join(fleet.routers)}",
                            EXIT_CONFIG)
        try:
            fleet.set_fault(key, mode)
        except ValueError as e:
            raise ExitError(f"--fault: {e}", EXIT_CONFIG) from None
    try:
        fleet.start(port)
    except OSError as e:
        raise ExitError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}", EXIT_CONFIG) from None
    if write_config:
        fleet.write_config(Path(write_config), source=source)
        click.echo(f"wrote {write_config}", err=True)
    click.echo(json.dumps(fleet.config(source=source), indent=2))
    click.echo("serving on 127.0.0.1; Ctrl-C to stop", err=True)
    wan_router = next(iter(fleet.routers))
    stop_at = time.monotonic() + seconds if seconds else None
    try:
        while stop_at is None or time.monotonic() < stop_at:
            time.sleep(1)
            with fleet.lock:
                fleet.step(1, wan_router=wan_router)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()


def main() -> None:
    cli(prog_name="netstat-collect")
