"""What no method can take, refused before any method runs, and OS errors told apart by fault.

JSON allows integers of any size and strings with NUL characters; the engine and the file system
do not, so `check_values` refuses them with the path of the offending value. `path_error` turns an
OS error a method raised into INPUT_ERROR when a path the request named is unusable.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from sidecar.errors import InputError, InternalError, InvalidParams, SidecarError

__all__ = ["INT_MAX", "INT_MIN", "MAX_NESTING", "NUL_ALLOWED", "PATH_ERRNOS", "check_values", "path_error"]

log = logging.getLogger(__name__)


INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""The integers a request may carry: what DuckDB's BIGINT/UBIGINT hold and the worker frames encode."""

MAX_NESTING = 64
"""How deeply a request's params may nest. The decoder follows about 1,000 levels, but the
worker's DuckDB copies a bound value recursively and fails near 500 (a RecursionError, once an
INTERNAL answer: tests/test_fuzz_protocol.py found it); no DuckDB value needs more than a few."""

NUL_ALLOWED = frozenset({"query.run $.sql", "query.run $.params"})
"""Where a string may hold U+0000: SQL text and bound values, which DuckDB takes whole. Everywhere
else strings are names and paths, where a NUL is an OS error (`embedded null byte`), never a name."""


def check_values(method: str, params: Any) -> None:
    """Refuse what no method can take: an integer outside 64 bits (JSON allows any; the engine
    does not), a NUL character in a name or a path, and nesting deeper than `MAX_NESTING`.

    >>> check_values("query.run", {"sql": "SELECT ?", "params": [2**64]})
    Traceback (most recent call last):
    ...
    sidecar.errors.InvalidParams: the integer at $.params[0] of query.run does not fit in 64 bits
    >>> check_values("dataset.analyze", {"path": "data\\x00.csv"})
    Traceback (most recent call last):
    ...
    sidecar.errors.InvalidParams: the string at $.path of dataset.analyze holds a NUL character (U+0000)
    >>> check_values("query.run", {"params": [[[1]]]}) is None
    True
    >>> deep: list = [1]
    >>> for _ in range(MAX_NESTING): deep = [deep]
    >>> check_values("query.run", {"params": deep})
    Traceback (most recent call last):
    ...
    sidecar.errors.InvalidParams: the value at $.params[0]...[0] of query.run nests deeper than 64 levels
    """
    stack: list[tuple[str, Any, int]] = [("$", params, 0)]
    while stack:  # no recursion: params may nest as deep as the decoder allowed
        path, container, depth = stack.pop()
        if depth > MAX_NESTING:
            raise InvalidParams(
                f"the value at {path} of {method} nests deeper than {MAX_NESTING} levels",
                hint="Flatten it; or pass it as JSON text and read it in SQL (e.g. CAST(? AS JSON)).",
            )
        if isinstance(container, dict):
            members: Any = container.items()
        elif isinstance(container, list):
            members = enumerate(container)
        else:
            continue
        for key, value in members:
            if isinstance(value, (dict, list)):
                stack.append((_at(path, key), value, depth + 1))
            elif isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
                raise InvalidParams(
                    f"the integer at {_at(path, key)} of {method} does not fit in 64 bits",
                    hint="Pass a bigger number as a string and CAST it in SQL (e.g. CAST(? AS HUGEINT)).",
                )
            elif isinstance(value, str) and "\x00" in value and not _nul_allowed(method, _at(path, key)):
                raise _nul(method, _at(path, key))
            if isinstance(key, str) and "\x00" in key and not _nul_allowed(method, path):
                raise _nul(method, f"{path}.{key!r}")


def _at(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def _nul_allowed(method: str, path: str) -> bool:
    roots = [entry.split(" ", 1)[1] for entry in NUL_ALLOWED if entry.startswith(method + " ")]
    return any(path == root or path.startswith((root + ".", root + "[")) for root in roots)


def _nul(method: str, path: str) -> InvalidParams:
    return InvalidParams(
        f"the string at {path} of {method} holds a NUL character (U+0000)",
        hint="Remove it: names and paths cannot hold NUL (only SQL text and query `params` can).",
    )


PATH_ERRNOS = frozenset(
    {errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ELOOP}
)
"""OS errors that say a path the request named cannot be used: the request's fault, not a bug."""


def path_error(method: str, exc: OSError) -> SidecarError:
    """An OS error from a method: INPUT_ERROR when a path named in the request is unusable.

    >>> path_error("config.validate", OSError(errno.ENAMETOOLONG, "File name too long", "a" * 9)).code
    'INPUT_ERROR'
    """
    if exc.errno not in PATH_ERRNOS:
        log.error("OS error in %s", method, exc_info=exc)
        return InternalError(f"internal error in {method}: {type(exc).__name__}: {exc}")
    return InputError(
        f"{method}: {exc.strerror}: {exc.filename!r}" if exc.filename else f"{method}: {exc.strerror}",
        hint="Check the path: it must exist and be readable, and each name in it fit the file system.",
        details={"path": exc.filename, "errno": errno.errorcode.get(exc.errno or 0)},
    )
