"""Domain exceptions. The CLI and the API each translate these at their edge, once.

    NetstatError                 every error this package raises on purpose
    ├── ConfigError              exit 2: routers.json (or an option) is missing or invalid
    ├── StorageError             exit 3: a database could not be opened, migrated or written
    │   └── LockBusy             exit 3: another run held the lock for too long
    ├── ClockError               exit 3: the clock is behind the last committed run
    ├── DataUnavailable          exit 3 (API: 503): a database to read is missing or unreadable
    ├── FetchError               one endpoint could not be fetched; reported per router, never exits
    └── ParseError               one answer has none of what its endpoint must contain

Each class declares the exit code the CLI ends with when it reaches the top, as click
does for its own exceptions. FetchError and ParseError never get there: a run reports
a failed endpoint in its result and exits 1 for it (see collector/run.py).
"""

EXIT_OK = 0
EXIT_PARTIAL = 1  # some router or endpoint failed; the rest is committed
EXIT_CONFIG = 2  # bad usage or configuration; nothing written
EXIT_STORAGE = 3  # storage, lock or clock trouble; nothing written


class NetstatError(Exception):
    """Base class for every error this package raises on purpose."""

    exit_code = EXIT_PARTIAL


class ConfigError(NetstatError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = EXIT_CONFIG


class StorageError(NetstatError):
    """A database could not be opened, migrated or written."""

    exit_code = EXIT_STORAGE


class LockBusy(StorageError):
    """Another run holds the data directory's lock for longer than we wait."""


class ClockError(NetstatError):
    """The system clock is behind the last committed run."""

    exit_code = EXIT_STORAGE


class DataUnavailable(NetstatError):
    """A database is missing or unreadable; the message names the file and the problem."""

    exit_code = EXIT_STORAGE


class FetchError(NetstatError):
    """One endpoint could not be fetched: network error, HTTP status, size cap, deadline."""


class ParseError(NetstatError):
    """A router's answer has none of what the endpoint must contain (e.g. no `wan:` line)."""
