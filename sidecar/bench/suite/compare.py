"""The regression rule: when is a candidate run slower than its baseline, and not just noisy?

A case (question, size, budget) of the sidecar side is a **regression** only when all hold:
1. median(candidate) / median(baseline) > the class threshold (default 1.10);
2. median(candidate) - median(baseline) > the floor (default 50 ms);
3. the samples differ: an exact two-sided Mann-Whitney U test gives p <= 0.05, or the ranges do
   not overlap (min(candidate) > max(baseline)); the verdict names which held.
A case that succeeded in the baseline and fails in the candidate is always a regression
(`newly_failing`). An **improvement** is the mirror image. Before a regression is flagged, the
suspects are measured again (sidecar/methods/bench.py re-runs them) and judged on the new samples.
"""

from __future__ import annotations

import math
import statistics
from functools import cache
from typing import Any

import msgspec

from sidecar.bench.suite.summary import CaseKey, group

__all__ = ["ALPHA", "CaseVerdict", "Rule", "judge", "mann_whitney_p"]

ALPHA = 0.05


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    threshold: float = 1.10
    """Median ratio candidate/baseline above which a case may be a regression."""
    floor_ms: float = 50.0
    """Absolute slowdown of the medians (ms) below which nothing is flagged."""
    class_thresholds: dict[str, float] = {}
    """Per class of work (e.g. {"load": 1.25}); others use `threshold`."""


class CaseVerdict(msgspec.Struct, frozen=True):
    question: str
    cls: str
    size_bytes: int
    budget_bytes: int | None
    verdict: str
    """regression | newly_failing | improvement | fixed | unchanged | failing | missing."""
    reason: str
    baseline_ms: list[float]
    candidate_ms: list[float]
    baseline_median_ms: float | None
    candidate_median_ms: float | None
    ratio: float | None
    threshold: float
    p_value: float | None
    """Exact two-sided Mann-Whitney p; None when a side has no successful run."""
    test: str
    """Which evidence said the samples differ: `mann-whitney`, `ranges`, `both`, or `none`."""
    rerun: bool = False
    """The candidate's samples are those of a re-run of this suspect."""


@cache
def _count(u2: int, n: int, m: int) -> int:
    """Arrangements of n x's and m y's with 2*U = u2 (U: pairs x > y), no ties."""
    if u2 < 0:
        return 0
    if n == 0 or m == 0:
        return 1 if u2 == 0 else 0
    # the largest value is an x (beats all m y's) or a y
    return _count(u2 - 2 * m, n - 1, m) + _count(u2, n, m - 1)


def mann_whitney_p(x: list[float], y: list[float]) -> float:
    """Exact two-sided p of the Mann-Whitney U test (ties count half; the null distribution is the no-ties one).

    >>> mann_whitney_p([10, 11, 12, 13, 14], [1, 2, 3, 4, 5])  # 2 / C(10, 5)
    0.007936507936507936
    >>> mann_whitney_p([1, 2, 3], [4, 5, 6])  # three each can never reach 0.05
    0.1
    >>> mann_whitney_p([1, 3, 5], [2, 4, 6])
    0.7
    """
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return 1.0
    u2 = sum(2 if a > b else 1 if a == b else 0 for a in x for b in y)
    total = math.comb(n + m, n)
    low = sum(_count(k, n, m) for k in range(0, u2 + 1, 2) if k <= u2) / total
    high = sum(_count(k, n, m) for k in range(u2 + (u2 % 2), 2 * n * m + 1, 2)) / total
    return min(1.0, 2 * min(low, high))


def _differ(c: list[float], b: list[float], slower: bool) -> tuple[bool, str, float]:
    p = mann_whitney_p(c, b)
    ranges = min(c) > max(b) if slower else max(c) < min(b)
    rank = p <= ALPHA
    test = "both" if rank and ranges else "mann-whitney" if rank else "ranges" if ranges else "none"
    return rank or ranges, test, p


def _ok(rows: list[dict[str, Any]]) -> list[float]:
    return [r["wall_ms"] for r in rows if r["status"] == "ok"]


def judge_case(
    key: CaseKey, cls: str, base: list[dict[str, Any]], cand: list[dict[str, Any]], rule: Rule
) -> CaseVerdict:
    threshold = rule.class_thresholds.get(cls, rule.threshold)
    b, c = _ok(base), _ok(cand)
    b_failed = bool(base) and len(b) < len(base)
    c_failed = bool(cand) and len(c) < len(cand)
    bm = statistics.median(b) if b else None
    cm = statistics.median(c) if c else None
    ratio = round(cm / bm, 3) if bm and cm is not None else None

    def verdict(name: str, reason: str, p: float | None = None, test: str = "none") -> CaseVerdict:
        return CaseVerdict(key[0], cls, key[1], key[2], name, reason, b, c, bm, cm, ratio, threshold, p, test)

    if not base or not cand:
        return verdict("missing", "measured in only one of the two runs")
    if c_failed and not b_failed:
        codes = sorted({r["status"] for r in cand if r["status"] != "ok"})
        return verdict(
            "newly_failing", f"succeeded in the baseline, fails in the candidate ({', '.join(codes)})"
        )
    if b_failed and not c_failed:
        return verdict("fixed", "failed in the baseline, succeeds in the candidate")
    if b_failed and c_failed:
        return verdict("failing", "fails in both runs")
    assert bm is not None and cm is not None and ratio is not None  # both sides have ok runs here
    slower = cm > bm
    differ, test, p = _differ(c, b, slower)
    diff = cm - bm
    if slower and ratio > threshold and diff > rule.floor_ms and differ:
        return verdict("regression", f"{ratio:.2f}x > {threshold:.2f}, +{diff:.0f} ms > {rule.floor_ms:.0f} ms, "
                       f"samples differ ({test}, p={p:.3g})", p, test)  # fmt: skip
    if not slower and ratio < 1 / threshold and -diff > rule.floor_ms and differ:
        return verdict("improvement", f"{ratio:.2f}x, {diff:.0f} ms ({test}, p={p:.3g})", p, test)
    why = []
    if (ratio > threshold) if slower else (ratio < 1 / threshold):
        why.append(f"ratio {ratio:.2f}x passes {threshold:.2f}")
    else:
        why.append(f"ratio {ratio:.2f}x within {threshold:.2f}")
    why.append(
        f"|diff| {abs(diff):.0f} ms {'>' if abs(diff) > rule.floor_ms else '<='} floor {rule.floor_ms:.0f} ms"
    )
    why.append(f"samples {'differ' if differ else 'overlap'} ({test}, p={p:.3g})")
    return verdict("unchanged", "; ".join(why), p, test)


def judge(
    baseline: list[dict[str, Any]], candidate: list[dict[str, Any]], rule: Rule, side: str = "sidecar"
) -> list[CaseVerdict]:
    """A verdict per case of `side` present in either run, in the baseline's order."""
    b_cases, c_cases = group(baseline), group(candidate)
    classes = {(r["question"], r["size_bytes"], r["budget_bytes"]): r["class"] for r in baseline + candidate}
    keys = list(b_cases) + [k for k in c_cases if k not in b_cases]
    return [
        judge_case(k, classes[k], b_cases.get(k, {}).get(side, []), c_cases.get(k, {}).get(side, []), rule)
        for k in keys
    ]
