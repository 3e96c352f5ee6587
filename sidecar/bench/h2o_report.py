"""The H2O benchmark's report: runs merged (fastest time, worst peak), the markdown tables, progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sidecar.bench.report import mib, write_block
from sidecar.config.settings import duckdb_limit_for
from sidecar.units import parse_size

__all__ = ["MODES", "merge", "progress", "render", "write_report"]

MODES = ("plain", "budget", "machine", "inner")


def _attempts(r: dict[str, Any]) -> str:
    parts = []
    for a in r["attempts"]:
        grown = f" grown to {mib(a['grown_to_bytes'])} MiB" if a.get("grown_to_bytes") else ""
        parts.append(f"{a['rung']}: {a['outcome']} @{mib(a['ceiling_bytes'])}/{mib(a['duckdb_memory_limit_bytes'])}"
                     f" t{a['threads']}{grown}")  # fmt: skip
    return "; ".join(parts) or "-"


def _ratio(plain: dict[str, Any], side: dict[str, Any], target: float) -> str:
    if plain["status"] != "ok":
        return "n/a (plain failed)"
    if side["status"] != "ok":
        return "**failed**"
    ratio = side["wall"] / plain["wall"]
    return f"{ratio:.2f}" + (" **over**" if ratio > target else "")


def _within(side: dict[str, Any]) -> str:
    """Own sampling against the ceiling; a worker the watchdog killed may overshoot by one 20 ms step."""
    over = side["sampled_peak"] - side["ceiling"]
    if side["guard_kills"]:
        return "**killed by the benchmark's guard**"
    if over <= 0:
        return f"yes ({side['sampled_peak'] / side['ceiling']:.2f})"
    killed = any(a["outcome"] == "MEMORY_CEILING" for a in side["attempts"])
    return f"over by {mib(over)} MiB" + (" (watchdog killed it)" if killed else " **not killed**")


HEADER = (
    "| query | plain | s | peak RSS | sidecar | s | peak RSS (stats) | peak RSS (sampled) "
    "| attempts | sidecar / plain |"
)
CEILINGS = (
    "**Ceilings** (this process sampled every worker every 20 ms; a sample can lag a growth by up to "
    "20 ms, so a worker the watchdog kills at its ceiling may show a little above it):"
)
CEILING_HEADER = (
    "| query | mode | ceiling MiB (largest granted) | worker peak MiB (sampled) "
    "| within (peak / ceiling) | sidecar alive | sidecar process peak MiB |"
)


def render(rows: list[dict[str, Any]], meta: dict[str, Any], target: float) -> str:
    head = (f"DuckDB {meta['duckdb']}, Python {meta['python']}, {meta['cpus']} CPUs, {meta['ram_gib']:.0f} GiB RAM, "
            f"no swap; rows={meta['rows']:,} ({meta['data_mib']:,.0f} MiB Parquet), threads={meta['threads']}, "
            f"budget {meta['budget_text']}; total {meta['minutes']:.0f} min.")  # fmt: skip
    lines = [head, ""]
    titles = {"budget": f"sidecar, `memory_limit: {meta['budget_text']}` (a hard {meta['budget_text']} worker ceiling)",
              "machine": f"sidecar, no memory_limit, machine budget {meta['machine_text']}, 4 slots "
                         f"(starts at {meta['budget_text']}, may grow)"}  # fmt: skip
    for mode in [m for m in ("budget", "machine") if m in meta["modes"]]:
        title = (f"**Plain DuckDB (memory_limit {meta['budget_text']}) against the {titles[mode]}.** Times in s, "
                 f"RSS in MiB. Time: the fastest of {meta['repeat']} runs; peaks and failures: the worst run. "
                 "Attempts as `rung: outcome @ceiling/DuckDB limit MiB, threads`.")  # fmt: skip
        lines += [title, "", HEADER, "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            p, s = r.get("plain"), r.get(mode)
            if s is None:
                continue
            plain = f"{p['status']} | {p['wall']:.1f} | {mib(p['peak_rss'])}" if p else "- | - | -"
            lines.append(
                f"| {r['query']} | {plain} | {s['status']} | {s['wall']:.1f} | {mib(s['stats_peak'])} "
                f"| {mib(s['sampled_peak'])} | {_attempts(s)} | {_ratio(p, s, target) if p else '-'} |"
            )
        lines.append("")
    if "inner" in meta["modes"]:
        inner = f"{duckdb_limit_for(parse_size(meta['budget_text'])) / MiB:.0f} MiB"
        title = f"**Plain DuckDB at the limit the sidecar gives DuckDB inside the {meta['budget_text']} ceiling ({inner}):**"
        header = f"| query | plain at budget | s | peak RSS | plain at {inner} | s | peak RSS | time ratio |"
        lines += [title, "", header, "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            p, i = r.get("plain"), r["inner"]
            ratio = f"{i['wall'] / p['wall']:.2f}" if p and p["status"] == i["status"] == "ok" else "-"
            plain = f"{p['status']} | {p['wall']:.1f} | {mib(p['peak_rss'])}" if p else "- | - | -"
            lines.append(
                f"| {r['query']} | {plain} | {i['status']} | {i['wall']:.1f} | {mib(i['peak_rss'])} | {ratio} |"
            )
        lines.append("")
    lines += [CEILINGS, "", CEILING_HEADER, "|---|---|---|---|---|---|---|"]
    for r in rows:
        for mode in ("budget", "machine"):
            s = r.get(mode)
            if s is not None:
                lines.append(
                    f"| {r['query']} | {mode} | {mib(s['ceiling'])} | {mib(s['sampled_peak'])} "
                    f"| {_within(s)} | {'yes' if s['sidecar_alive'] else '**no**'} | {mib(s['sidecar_rss'])} |"
                )
    lines += _answers(rows)
    errors = [(r["query"], m, r[m]["error"]) for r in rows for m in MODES if r.get(m) and r[m]["error"]]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {q} ({m}): `{e[:240]}`" for q, m, e in errors]
    return "\n".join(lines) + "\n"


def _answers(rows: list[dict[str, Any]]) -> list[str]:
    """Rows of each written question's file, and whether each sidecar file holds plain DuckDB's rows."""
    answered = [r for r in rows if any("answer" in (r.get(m) or {}) for m in MODES)]
    if not answered:
        return []
    title = (
        "**Written questions**: rows in the Parquet file, and whether it holds plain DuckDB's rows "
        "(count and sum of row hashes):"
    )
    lines = ["", title, "", "| query | mode | rows | same as plain |", "|---|---|---|---|"]
    for r in answered:
        plain = (r.get("plain") or {}).get("answer")
        for mode in MODES:
            s = r.get(mode) or {}
            if "answer" in s:
                same = "yes" if s["answer"] == plain else "n/a" if plain is None else "**no**"
                same = "-" if mode == "plain" else same
                lines.append(f"| {r['query']} | {mode} | {s['answer'][0]:,} | {same} |")
    return lines


def write_report(path: Path, table: str, command: str) -> None:
    """Replace the generated block of `path`, keeping the prose around it."""
    write_block(path, "h2o", "H2O db-benchmark: plain DuckDB against the sidecar", table, command)


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run's time (a neighbour's load only ever adds time), the worst run's peaks and failure."""
    failed = [r for r in runs if r["status"] != "ok"]
    best = dict(failed[0] if failed else min(runs, key=lambda r: r["wall"]))
    for key in ("peak_rss", "stats_peak", "sampled_peak", "sidecar_rss", "ceiling"):
        if key in best:
            best[key] = max(r[key] for r in runs)
    if "attempts" in best:  # the attempts of the run with the highest sampled peak
        best["attempts"] = max(runs, key=lambda r: r["sampled_peak"])["attempts"]
        best["sidecar_alive"] = all(r["sidecar_alive"] for r in runs)
        best["guard_kills"] = [k for r in runs for k in r["guard_kills"]]
    best["walls"] = [round(r["wall"], 2) for r in runs]
    best["runs"] = len(runs)
    return best


def progress(query: str, mode: str, r: dict[str, Any]) -> None:
    peak = r.get("peak_rss", r.get("sampled_peak", 0))
    extra = (
        f" stats {mib(r['stats_peak'])} attempts [{_attempts(r)}]" if mode not in ("plain", "inner") else ""
    )
    sys.stderr.write(f"{query:<15} {mode:<8} {r['status']:<16} {r['wall']:7.1f}s peak {mib(peak):>6} MiB"
                     f"{extra} {r['error'][:160]}\n")  # fmt: skip
    sys.stderr.flush()
