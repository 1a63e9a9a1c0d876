"""Source paths as clients send them in `/img/{path}`: pure validation, no file system access.

A path is relative, `/`-separated, with no empty, `.` or `..` segment, no backslash, NUL or
other control character. aiohttp hands handlers the percent-decoded path, so `%2e%2e`, `%2f`
and `%00` are caught here too. The directory source additionally resolves symlinks and refuses
anything that lands outside its root (`sources.DirSource`).
"""

from __future__ import annotations

import re

from transforms.errors import InvalidParam

MAX_PATH_CHARS = 1024
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # one search: a generator over the characters was ~2 us


def clean_path(path: str) -> str:
    """Return `path` unchanged if it is a safe relative source path; raise InvalidParam (400)."""
    if not path:
        raise InvalidParam("path: empty")
    if len(path) > MAX_PATH_CHARS:
        raise InvalidParam(f"path: longer than {MAX_PATH_CHARS} characters")
    if CONTROL.search(path):
        raise InvalidParam("path: contains a control character")
    if "\\" in path:
        raise InvalidParam("path: contains a backslash")
    if path.startswith("/"):
        raise InvalidParam("path: must be relative")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidParam("path: empty, '.' or '..' segments are not allowed")
    return path
