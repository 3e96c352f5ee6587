"""docs/operations/fallback-procedures.md stays true to the code.

Its ladder table names every rung of the real ladder, its error table covers every error code,
the figures it quotes are the code's constants, and every relative link in it and in the three
user guides it leans on (memory management, protocol, troubleshooting) reaches a file, and a
heading when it names one. The checkers are tried on counterexamples first.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sidecar.config.settings import DEFAULT_STALL_TIMEOUT_MS, MACHINE_BUDGET_SHARE, Thresholds
from sidecar.errors import ERROR_CLASSES
from sidecar.workers import watchdog
from sidecar.workers.supervisor import OOM_KILL_HINT_FRACTION
from sidecar.jobs.ladder import DEFAULT_LADDER, MIN_MEMORY_PER_THREAD, RetryLadder

DOCS = Path(__file__).parents[1] / "docs"
FALLBACK = DOCS / "operations" / "fallback-procedures.md"
LINKED_DOCS = [FALLBACK, DOCS / "memory-management.md", DOCS / "protocol.md", DOCS / "troubleshooting.md"]

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def table_after(text: str, header: str) -> list[list[str]]:
    """The body rows (cells stripped) of the markdown table whose header row starts with `header`."""
    start = text.index(header)
    lines = text[start:].split("\n\n", 1)[0].splitlines()
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]


def first_column_names(rows: list[list[str]]) -> set[str]:
    return {m.group(1) for row in rows if (m := re.fullmatch(r"`([^`]+)`", row[0]))}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading.

    >>> slug("DuckDB's `OUT_OF_MEMORY`")
    'duckdbs-out_of_memory'
    >>> slug("A hang: the timeout, and the stall watchdog")
    'a-hang-the-timeout-and-the-stall-watchdog'
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *$", text, re.M)}


def broken_links(path: Path, text: str) -> list[str]:
    """Relative links in `text` (as if it were `path`) whose file, or heading, does not exist."""
    out = []
    for target in LINK.findall(FENCE.sub("", text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_file():
            out.append(f"{target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            out.append(f"{target}: no heading #{anchor} in {resolved.name}")
    return out


def fallback() -> str:
    return FALLBACK.read_text(encoding="utf-8")


# -- the checkers cannot pass vacuously ---------------------------------------------------


def test_the_link_checker_catches_a_missing_file_and_a_missing_heading() -> None:
    assert broken_links(FALLBACK, "see [x](../no-such-file.md)")
    assert broken_links(FALLBACK, "see [x](../memory-management.md#no-such-heading)")
    assert broken_links(FALLBACK, "see [x](#no-such-heading)")
    assert not broken_links(FALLBACK, "see [x](../memory-management.md) and [y](https://duckdb.org/x)")
    assert not broken_links(FALLBACK, "```\n[not a link](nowhere.md)\n```")


def test_the_table_reader_reads_the_first_column() -> None:
    text = "| rung | x |\n| --- | --- |\n| `grow` | a |\n| `retry` | b |\n\nafter"
    assert first_column_names(table_after(text, "| rung |")) == {"grow", "retry"}


# -- the page against the code ------------------------------------------------------------


def test_every_rung_of_the_ladder_is_in_the_ladder_table() -> None:
    rows = table_after(fallback(), "| rung | applies when | what it changes | why |")
    documented = first_column_names(rows)
    for rung in DEFAULT_LADDER:
        assert rung.name in documented, f"rung {rung.name!r} is not in the ladder table"
    # besides the real rungs, only the first attempt and the announced partition rung
    assert documented - {r.name for r in DEFAULT_LADDER} <= {"first", "partition"}, documented


def test_every_error_code_is_covered() -> None:
    rows = table_after(fallback(), "| code | retried by the sidecar |")
    documented = first_column_names(rows)
    for cls in ERROR_CLASSES:
        assert cls.code in documented, f"{cls.code} has no row in the error table"
    assert documented <= {cls.code for cls in ERROR_CLASSES}, documented


def test_the_figures_quoted_are_the_code_constants() -> None:
    text = " ".join(fallback().split())  # the page wraps its lines anywhere
    assert round(1 / watchdog.INTERVAL_S) == 50 and "50 times a second" in text
    assert watchdog.INTERVAL_S * 1000 == 20 and "every 20 ms" in text
    assert watchdog.GRACE_S == 3.0 and "within 3 s" in text
    assert watchdog.GROW_AT_BUFFER_FRACTION == 0.90 and "more than 90% of its limit" in text
    assert RetryLadder().max_attempts == 5 and "after 5 attempts" in text
    assert MIN_MEMORY_PER_THREAD == 256 * 1024**2 and "under 256 MiB of DuckDB limit per thread" in text
    assert Thresholds().duckdb_memory_emergency == 0.95 and "95% by default" in text
    assert DEFAULT_STALL_TIMEOUT_MS == 120_000 and "default 120000" in text
    assert OOM_KILL_HINT_FRACTION == 0.5 and "at least half its ceiling" in text
    assert MACHINE_BUDGET_SHARE == 0.80


@pytest.mark.parametrize("path", LINKED_DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(path: Path) -> None:
    assert path.is_file(), f"{path} is missing"
    problems = broken_links(path, path.read_text(encoding="utf-8"))
    assert not problems, f"broken links in {path.relative_to(DOCS.parent)}:\n" + "\n".join(problems)
