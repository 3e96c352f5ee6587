"""The regression rule on hand-made samples: each condition can block a flag, and newly failing always flags."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from sidecar.bench.suite.compare import Rule, judge, mann_whitney_p


def rows(
    walls: list[float], status: str = "ok", question: str = "q", cls: str = "sort"
) -> list[dict[str, Any]]:
    return [
        {"question": question, "class": cls, "size_bytes": 1, "budget_bytes": None, "side": "sidecar",
         "status": status, "wall_ms": w, "input_bytes": 1, "peak_rss_bytes": 0, "peak_duckdb_bytes": 0,
         "spill_bytes": 0, "rungs": "", "parts": None, "error": ""}
        for w in walls
    ]  # fmt: skip


def verdict(base: list[dict[str, Any]], cand: list[dict[str, Any]], rule: Rule | None = None) -> Any:
    (v,) = judge(base, cand, rule or Rule())
    return v


def brute_force_p(x: list[float], y: list[float]) -> float:
    """The exact two-sided p by listing every way to split the pooled values (no ties)."""
    pooled = x + y
    u = sum(a > b for a in x for b in y)
    us = []
    for idx in itertools.combinations(range(len(pooled)), len(x)):
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in idx]
        us.append(sum(a > b for a in xs for b in ys))
    low = sum(v <= u for v in us) / len(us)
    high = sum(v >= u for v in us) / len(us)
    return min(1.0, 2 * min(low, high))


@pytest.mark.parametrize("n,m", [(3, 3), (4, 6), (5, 5), (2, 7)])
def test_mann_whitney_matches_brute_force(n: int, m: int) -> None:
    values = [((i * 7919) % 101) + i / 1000 for i in range(n + m)]  # distinct, shuffled
    for shift in range(n + m):
        x, y = values[shift : shift + n], values[:shift] + values[shift + n :]
        if len(x) == n:
            assert math.isclose(mann_whitney_p(x, y), brute_force_p(x, y))


def test_clear_slowdown_is_a_regression_by_rank_test() -> None:
    v = verdict(rows([100, 101, 102, 103, 104]), rows([200, 201, 202, 203, 204]))
    assert v.verdict == "regression" and v.test == "both" and v.p_value < 0.05


def test_three_samples_each_flag_by_disjoint_ranges_only() -> None:
    v = verdict(rows([100, 101, 102]), rows([200, 201, 202]))
    assert v.verdict == "regression" and v.test == "ranges" and v.p_value == pytest.approx(0.1)


def test_below_the_ratio_threshold_is_not_flagged() -> None:
    v = verdict(rows([1000, 1001, 1002]), rows([1080, 1081, 1082]))  # 8% slower, 80 ms, disjoint
    assert v.verdict == "unchanged" and "within 1.10" in v.reason


def test_below_the_floor_is_not_flagged() -> None:
    v = verdict(rows([10, 11, 12]), rows([40, 41, 42]))  # 4x but 30 ms
    assert v.verdict == "unchanged" and "floor" in v.reason


def test_overlapping_noisy_samples_are_not_flagged() -> None:
    v = verdict(rows([100, 400, 120]), rows([380, 150, 390]))  # median 1.15x... but ranges overlap, p large
    assert v.verdict == "unchanged" and v.test == "none"


def test_class_threshold_overrides_the_default() -> None:
    base, cand = rows([1000, 1001, 1002]), rows([1200, 1201, 1202])
    assert verdict(base, cand).verdict == "regression"
    assert verdict(base, cand, Rule(class_thresholds={"sort": 1.25})).verdict == "unchanged"


def test_newly_failing_is_always_a_regression_and_fixed_is_not() -> None:
    assert verdict(rows([100, 100]), rows([5, 5], status="OUT_OF_MEMORY")).verdict == "newly_failing"
    assert verdict(rows([5], status="TIMEOUT"), rows([100])).verdict == "fixed"
    assert verdict(rows([5], status="TIMEOUT"), rows([5], status="TIMEOUT")).verdict == "failing"


def test_speedup_is_an_improvement() -> None:
    assert verdict(rows([200, 201, 202]), rows([100, 101, 102])).verdict == "improvement"


def test_a_question_in_one_run_only_is_missing() -> None:
    out = judge(rows([100], question="a"), rows([100], question="b"), Rule())
    assert [(v.question, v.verdict) for v in out] == [("a", "missing"), ("b", "missing")]
