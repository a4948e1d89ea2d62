"""netstat-collect: exact per-device monthly traffic accounting from OpenWrt routers."""

__version__ = "0.1.0"

# Where the old daemon's deployment keeps things. Defined here, not in config.py, so
# that `netstat-collect --help` imports nothing but click.
DEFAULT_CONFIG = "/etc/netstat-collect/routers.json"
DEFAULT_DATA_DIR = "/var/www/netstat-data"
# How long a run waits for another run's lock before giving up (exit 3): longer than a
# slow run of a large fleet, far shorter than cron's 30 minutes.
DEFAULT_LOCK_WAIT_SECONDS = 120.0
