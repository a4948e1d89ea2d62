"""netstat-collect: exact per-device monthly traffic accounting from OpenWrt routers."""

__version__ = "0.1.0"

# Where the old daemon's deployment keeps things. Defined here, not in config.py, so
# that `netstat-collect --help` imports nothing but click.
DEFAULT_CONFIG = "/etc/netstat-collect/routers.json"
DEFAULT_DATA_DIR = "/var/www/netstat-data"
