"""The headroom benchmark's model and report: fit `peak RSS = base + k x limit` to the runs of
`sidecar.bench.headroom` and render them as the tables of docs/performance/headroom.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sidecar.bench.report import mib, write_block

__all__ = ["SATURATED", "fit", "limit_for_budget", "render", "saturated", "summarize", "write_report"]

SATURATED = 0.95
"""A run whose DuckDB buffer peak reached this share of its limit shows what a full limit costs."""


def fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares `rss = base + k * limit` through (limit, rss) points.

    >>> fit([(1, 12), (2, 14), (3, 16)])
    (10.0, 2.0)
    """
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    k = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.0
    return my - k * mx, k


def limit_for_budget(budget: int, reserve: int, k: float, floor_share: float = 0.5) -> int:
    """DuckDB's limit under the model `RSS = reserve + k x limit`, never below `floor_share` of it.

    >>> limit_for_budget(1280, 256, 1.0), limit_for_budget(300, 256, 1.0)
    (1024, 150)
    """
    return max(int(budget * floor_share), int((budget - reserve) / k))


def saturated(r: dict[str, Any]) -> bool:
    """DuckDB's buffer manager reached ~its limit, so this peak says what a full limit costs."""
    return bool(r["buffer_peak"] >= SATURATED * r["limit"] or r["status"] in ("oom", "killed"))


def summarize(results: list[dict[str, Any]], base: int) -> dict[str, float]:
    """The model `peak RSS = base + k x limit`: fitted on saturated runs, and its upper envelope."""
    full = [r for r in results if saturated(r)] or results
    points = [(r["limit"], r["peak_rss"]) for r in full]
    fixed, k = fit(points) if len({p[0] for p in points}) > 1 else (0.0, 0.0)
    k_env = max((r["peak_rss"] - base) / r["limit"] for r in full)
    extra = max(r["peak_rss"] - base - r["limit"] for r in full)
    return {"fit_base": fixed, "fit_k": k, "base": base, "k_envelope": k_env, "max_extra": extra}


def render(results: list[dict[str, Any]], base: dict[str, Any], meta: dict[str, Any]) -> str:
    """The markdown tables of one run: every (limit, shape), the worst per limit, the budgets, the fit."""
    b = base["VmHWM"]
    lines = [
        f"DuckDB {meta['duckdb']}, Python {meta['python']}, {meta['cpus']} CPUs, "
        f"{meta['ram_gib']:.0f} GiB RAM, no swap; threads={meta['threads']}, rows={meta['rows']:,} "
        f"({meta['data_mib']:,.0f} MiB Parquet), preserve_insertion_order=false.",
        "",
        f"Baseline (python + `import duckdb` + connect, idle): VmHWM {mib(b)} MiB.",
        "",
        "| limit | shape | status | wall s | peak RSS MiB | RSS / limit | (RSS - base) / limit "
        "| DuckDB buffer peak MiB | RSS - base - buffer MiB | spill MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mark = "" if saturated(r) else " (not full)"
        lines.append(
            f"| {r['limit_text']} | {r['shape']} | {r['status']}{mark} | {r['wall']:.1f} "
            f"| {mib(r['peak_rss'])} | {r['peak_rss'] / r['limit']:.2f} "
            f"| {(r['peak_rss'] - b) / r['limit']:.2f} "
            f"| {mib(r['buffer_peak'])} | {mib(r['peak_rss'] - b - r['buffer_peak'])} "
            f"| {mib(r['spill'])} |"
        )
    errors = [r for r in results if r["error"]]
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"- {r['limit_text']} {r['shape']}: `{r['error'][:200]}`" for r in errors]
    lines += ["", "Worst case per limit (any status; a failed query's peak still counts):", "",
              "| limit | worst shape | peak RSS MiB | RSS / limit | (RSS - base) / limit |",
              "|---|---|---|---|---|"]  # fmt: skip
    for limit in sorted({r["limit"] for r in results}):
        top = max((r for r in results if r["limit"] == limit), key=lambda r: r["peak_rss"])
        lines.append(f"| {top['limit_text']} | {top['shape']} | {mib(top['peak_rss'])} "
                     f"| {top['peak_rss'] / limit:.2f} | {(top['peak_rss'] - b) / limit:.2f} |")  # fmt: skip
    budgeted = [r for r in results if r.get("budget")]
    if budgeted:
        model = f"max(budget / 2, (budget - {meta['reserve_text']}) / {meta['k']})"
        lines += ["", f"Budgets checked with DuckDB limit = {model}:", "",
                  "| budget | DuckDB limit | shape | status | peak RSS MiB | RSS / budget |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for r in budgeted:
            over = " **over**" if r["peak_rss"] > r["budget"] else ""
            lines.append(f"| {r['budget_text']} | {mib(r['limit'])} MiB | {r['shape']} | {r['status']} "
                         f"| {mib(r['peak_rss'])} | {r['peak_rss'] / r['budget']:.2f}{over} |")  # fmt: skip
    if len({r["limit"] for r in results}) >= 2:
        m = summarize(results, b)
        lines += ["", f"Saturated runs (buffer peak >= {SATURATED:.0%} of the limit, or OOM): least-squares "
                  f"peak RSS = {mib(m['fit_base'])} MiB + {m['fit_k']:.3f} x limit; envelope with the "
                  f"measured base: peak RSS <= {mib(b)} MiB + {m['k_envelope']:.3f} x limit; largest RSS "
                  f"above base + limit: {mib(m['max_extra'])} MiB."]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_report(path: Path, table: str, command: str) -> None:
    """Replace the generated block of `path`, keeping the prose around it."""
    write_block(path, "headroom", "Headroom: process RSS against DuckDB's memory_limit", table, command)
