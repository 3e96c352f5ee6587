"""Byte sizes: parsed only at the edges, integers of bytes everywhere inside.

DuckDB reads "1GB" as 10^9 bytes and "1GiB" as 2^30; so do we.
"""

from __future__ import annotations

import re

__all__ = ["parse_size", "format_size", "duckdb_size"]

_UNITS = {
    "": 1,
    "B": 1,
    "BYTE": 1,
    "BYTES": 1,
    "K": 1000,
    "KB": 1000,
    "M": 1000**2,
    "MB": 1000**2,
    "G": 1000**3,
    "GB": 1000**3,
    "T": 1000**4,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: str | int | float) -> int:
    """Bytes from a size like "4GB", "1.5 GiB", "512MB" or a plain number of bytes.

    >>> parse_size("1GB"), parse_size("1GiB"), parse_size(2048)
    (1000000000, 1073741824, 2048)

    Raises ValueError with a message a person can act on.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '4GB' or '4GiB', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a size cannot be negative: {value!r}")
        return int(value)
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"expected a size such as '4GB' or '4GiB', got {value!r}")
    number, unit = match.groups()
    factor = _UNITS.get(unit.upper())
    if factor is None:
        raise ValueError(
            f"unknown size unit {unit!r} in {value!r}; use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB"
        )
    return int(float(number) * factor)


def format_size(n: int | None) -> str:
    """Both units, as a person reads them.

    >>> format_size(1073741824)
    '1.00 GiB (1.07 GB)'
    >>> format_size(512)
    '512 B'
    """
    if n is None:
        return "unknown"
    if n < 1024:
        return f"{n} B"
    binary = [("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)]
    decimal = [("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)]
    b_unit, b_factor = next((u, f) for u, f in binary if n >= f)
    d_unit, d_factor = next(((u, f) for u, f in decimal if n >= f), ("B", 1))
    return f"{n / b_factor:.2f} {b_unit} ({n / d_factor:.2f} {d_unit})"


def duckdb_size(n: int) -> str:
    """A byte count as DuckDB's settings accept it, exactly.

    >>> duckdb_size(1073741824)
    '1073741824B'
    """
    return f"{int(n)}B"
