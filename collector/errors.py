"""Domain exceptions. The CLI and the API each translate these at their edge, once."""


class NetstatError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(NetstatError):
    """The configuration file is missing, unreadable or invalid (exit code 2)."""


class StorageError(NetstatError):
    """A database could not be opened, migrated or written (exit code 3)."""


class LockBusy(StorageError):
    """Another run holds the data directory's lock for longer than we wait."""


class ClockError(NetstatError):
    """The system clock is behind the last committed run (exit code 3)."""


class FetchError(NetstatError):
    """One endpoint could not be fetched: network error, HTTP status, size cap, deadline."""


class DataUnavailable(NetstatError):
    """A database is missing or unreadable; the message names the file and the problem."""


class ParseError(NetstatError):
    """A router's answer has none of what the endpoint must contain (e.g. no `wan:` line)."""
