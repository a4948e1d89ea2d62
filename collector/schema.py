"""Where the databases are: every SQLite URI is built here."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlencode


def sqlite_uri(path: str | os.PathLike, **params: object) -> str:
    """A `file:` URI for sqlite3.connect(..., uri=True) naming exactly `path`.

    The path is made absolute and percent-encoded from its bytes: a `?`, `#` or `%`
    in a directory's name would otherwise end the path or change it (`d#x/...` opens
    a file `d`), and a name that is not UTF-8 still names the same file.
    `params` become the query: sqlite_uri(p, mode="ro") ends in `?mode=ro`.
    """
    absolute = os.fsencode(Path(os.path.abspath(path)))
    uri = "file://" + quote(absolute, safe="/")
    return f"{uri}?{urlencode(params)}" if params else uri
