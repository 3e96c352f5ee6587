"""From result rows (one per question, size, budget, side and repeat) to one summary per case."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = ["CaseKey", "CaseSummary", "SideSummary", "group", "summarize"]

CaseKey = tuple[str, int, int | None]
"""(question, size_bytes, budget_bytes)."""


class SideSummary(msgspec.Struct, frozen=True):
    status: str
    """`ok` when every counted run succeeded, else the first failing run's code."""
    runs: int
    median_ms: float | None
    min_ms: float | None
    max_ms: float | None
    peak_rss_bytes: int
    peak_duckdb_bytes: int
    spill_bytes: int
    error: str = ""
    rungs: str = ""
    """The sidecar's ladder attempts of its worst run (`rung:outcome`, ...)."""
    parts: int | None = None


class CaseSummary(msgspec.Struct, frozen=True):
    question: str
    cls: str
    size_bytes: int
    input_bytes: int
    budget_bytes: int | None
    sidecar: SideSummary
    plain: SideSummary
    ratio: float | None
    """Median sidecar time / median plain time (both ok)."""
    answers_agree: bool
    """Every successful run of both sides gave the same answer fingerprint."""


def group(rows: Iterable[dict[str, Any]]) -> dict[CaseKey, dict[str, list[dict[str, Any]]]]:
    """Rows by case, then by side, in the order they were first seen."""
    cases: dict[CaseKey, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: {"sidecar": [], "plain": []})
    for r in rows:
        cases[(r["question"], r["size_bytes"], r["budget_bytes"])][r["side"]].append(r)
    return dict(cases)


def side_summary(rows: list[dict[str, Any]]) -> SideSummary:
    if not rows:
        return SideSummary("MISSING", 0, None, None, None, 0, 0, 0)
    failed = [r for r in rows if r["status"] != "ok"]
    walls = [r["wall_ms"] for r in rows if r["status"] == "ok"]
    worst = max(rows, key=lambda r: r["peak_rss_bytes"])
    return SideSummary(
        status=failed[0]["status"] if failed else "ok",
        runs=len(rows),
        median_ms=statistics.median(walls) if walls else None,
        min_ms=min(walls) if walls else None,
        max_ms=max(walls) if walls else None,
        peak_rss_bytes=worst["peak_rss_bytes"],
        peak_duckdb_bytes=max(r["peak_duckdb_bytes"] for r in rows),
        spill_bytes=max(r["spill_bytes"] for r in rows),
        error=failed[0]["error"] if failed else "",
        rungs=worst["rungs"] or "",
        parts=worst["parts"],
    )


def summarize(rows: list[dict[str, Any]]) -> list[CaseSummary]:
    """One summary per case: medians, ranges and peaks per side, the time ratio and the answer check."""
    out = []
    for (question, size, budget), sides in group(rows).items():
        first = (sides["sidecar"] or sides["plain"])[0]
        sc, pl = side_summary(sides["sidecar"]), side_summary(sides["plain"])
        ratio = sc.median_ms / pl.median_ms if sc.median_ms is not None and pl.median_ms else None
        wrong = any(r["status"] == "WRONG_ANSWER" for r in sides["sidecar"] + sides["plain"])
        out.append(CaseSummary(question, first["class"], size, first["input_bytes"], budget, sc, pl,
                               None if ratio is None else round(ratio, 3), not wrong))  # fmt: skip
    return out
