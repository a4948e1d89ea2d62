"""netstat-collect: exact per-device monthly traffic accounting from OpenWrt routers."""

__version__ = "0.1.0"
