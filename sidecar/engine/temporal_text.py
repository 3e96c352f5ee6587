"""DuckDB's text of temporal values reshaped into the JSON forms docs/protocol.md promises.

DuckDB renders DATE, TIME, TIMESTAMP, TIMESTAMPTZ and INTERVAL as text in SQL (Python's conversion
loses infinities, months and nanoseconds); these pure functions only reshape that text: a 'T'
between date and time, UTC with a 'Z', an ISO 8601 duration. `sidecar/engine/encode.py` picks
which one a column's type needs.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = [
    "iso_duration",
    "iso_parts",
    "interval_text_to_iso",
    "timestamp_text",
    "timestamptz_text_to_utc",
    "utc_z",
]


def iso_duration(value: dt.timedelta) -> str:
    """An ISO 8601 duration of a Python timedelta (the path for results DuckDB did not render).

    >>> iso_duration(dt.timedelta(days=1, hours=2, microseconds=500))
    'P1DT2H0.0005S'
    >>> iso_duration(dt.timedelta(0)), iso_duration(-dt.timedelta(hours=1))
    ('PT0S', '-PT1H')
    """
    total = value // dt.timedelta(microseconds=1)
    days, micros = divmod(abs(total), 86_400_000_000)
    sign = -1 if total < 0 else 1
    return iso_parts(0, 0, sign * days, sign * micros)


def iso_parts(years: int, months: int, days: int, micros: int) -> str:
    """An ISO 8601 duration from DuckDB's separate parts. A sign that holds for every part
    leads ("-P1D"); mixed signs stay on their parts ("P1M-2D").

    >>> iso_parts(0, 1, -2, 0), iso_parts(0, 0, -1, -3_600_000_000)
    ('P1M-2D', '-P1DT1H')
    """
    nonzero = [n for n in (years, months, days, micros) if n]
    lead = "-" if nonzero and all(n < 0 for n in nonzero) else ""
    if lead:
        years, months, days, micros = -years, -months, -days, -micros
    out = lead + "P" + "".join(f"{n}{unit}" for n, unit in ((years, "Y"), (months, "M"), (days, "D")) if n)
    if micros:
        sign = "-" if micros < 0 else ""
        seconds, us = divmod(abs(micros), 1_000_000)
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        clock = "".join(f"{sign}{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
        if secs or us:
            clock += f"{sign}{secs}" + f".{us:06d}".rstrip("0").rstrip(".") + "S"
        out += "T" + clock
    return out if out not in ("P", "-P") else "PT0S"


INTERVAL_PART = re.compile(r"(-?\d+) (year|month|day)s?")
INTERVAL_CLOCK = re.compile(r"(-?)(\d+):(\d{2}):(\d{2})(?:\.(\d+))?$")


def interval_text_to_iso(text: str) -> str:
    """DuckDB's text of an INTERVAL as an ISO 8601 duration, months, days and time kept apart
    as DuckDB keeps them.

    >>> interval_text_to_iso("1 year 2 months -3 days 04:05:06.789")
    'P1Y2M-3DT4H5M6.789S'
    >>> interval_text_to_iso("-1 day -01:00:00"), interval_text_to_iso("00:00:00")
    ('-P1DT1H', 'PT0S')
    """
    parts = {unit: int(n) for n, unit in INTERVAL_PART.findall(text)}
    micros = 0
    if clock := INTERVAL_CLOCK.search(text):
        sign, hours, minutes, secs, frac = clock.groups()
        micros = (int(hours) * 3600 + int(minutes) * 60 + int(secs)) * 1_000_000
        micros += int((frac or "0").ljust(6, "0")[:6])
        micros = -micros if sign else micros
    return iso_parts(parts.get("year", 0), parts.get("month", 0), parts.get("day", 0), micros)


def timestamp_text(text: str) -> str:
    """DuckDB's text of a TIMESTAMP with ISO's 'T' between date and time.

    >>> timestamp_text("2024-02-29 12:00:00.5"), timestamp_text("infinity")
    ('2024-02-29T12:00:00.5', 'infinity')
    """
    return text.replace(" ", "T", 1) if text[:1].isdigit() else text


def timestamptz_text_to_utc(text: str) -> str:
    """DuckDB's text of a TIMESTAMPTZ (in the session's time zone) as UTC with a 'Z'. Text that
    Python's datetime cannot hold (before year 1, after 9999, infinities) stays DuckDB's.

    >>> timestamptz_text_to_utc("2019-12-31 19:00:00.25-05")
    '2020-01-01T00:00:00.25Z'
    >>> timestamptz_text_to_utc("-infinity")
    '-infinity'
    """
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if value.tzinfo is None:
        return text
    return utc_z(value)


def utc_z(value: dt.datetime) -> str:
    """An aware datetime as UTC text with a 'Z', year padded to four digits.

    >>> utc_z(dt.datetime(2020, 1, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=5))))
    '2020-01-01T00:00:00Z'
    """
    utc = value.astimezone(dt.timezone.utc)
    frac = f"{utc.microsecond:06d}".rstrip("0")
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"
