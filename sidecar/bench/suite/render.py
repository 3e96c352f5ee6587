"""Reports people look at: Markdown tables and a self-contained HTML page with charts.

Charts are drawn by matplotlib (the optional `bench` extra), imported only here and only when a
report asks for charts: time against input size (log-log) per class for both sides, peak RSS and
spill against the budget, the sidecar/plain ratio per question, and for a comparison the
candidate/baseline ratio with its range per question. Without matplotlib a report still has
every table, and says which install brings the charts.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from sidecar.units import format_size

__all__ = ["CHARTS_EXTRA", "charts", "have_matplotlib", "html_page", "markdown"]

CHARTS_EXTRA = "pip install 'bmad-data-sidecar[bench]' (or pip install matplotlib)"


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _mib(v: int | None) -> str:
    return "-" if not v else f"{v / 2**20:,.0f}"


def _size(n: int | None) -> str:
    return "no limit" if n is None else format_size(n).split(" (")[-1].rstrip(")")


def _side(s: dict[str, Any]) -> str:
    if s["status"] != "ok":
        return f"**{s['status']}**"
    return f"{_ms(s['median_ms'])} ({_ms(s['min_ms'])}-{_ms(s['max_ms'])})"


def run_table(run: dict[str, Any], cases: list[dict[str, Any]]) -> str:
    m, v = run["machine"], run["versions"]
    head = (f"Run `{run['run_id']}`{' (label `' + run['label'] + '`)' if run['label'] else ''}: suite {run['suite']}, "
            f"{run['repeat']} counted runs per side after a warm-up; {m['cpu_model']}, {m['cores']} cores, "
            f"{m['memory_bytes'] / 2**30:.0f} GiB (machine {m['fingerprint']}); sidecar {v['sidecar']}, DuckDB "
            f"{v['duckdb']}, Python {v['python']}; settings {run['settings']}; commit {run['git_commit'] or '-'}.")  # fmt: skip
    header = ("| question | class | size | budget | sidecar ms | plain ms | sidecar / plain | sidecar RSS "
              "| plain RSS | spill MiB | ladder | answers |")  # fmt: skip
    lines = [head, "", "Times in ms as median (min-max); RSS: the whole process tree's peak, MiB.", "",
             header, "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in cases:
        sc, pl = c["sidecar"], c["plain"]
        ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}"
        lines.append(f"| {c['question']} | {c['cls']} | {_size(c['size_bytes'])} | {_size(c['budget_bytes'])} "
                     f"| {_side(sc)} | {_side(pl)} | {ratio} | {_mib(sc['peak_rss_bytes'])} | {_mib(pl['peak_rss_bytes'])} "
                     f"| {_mib(sc['spill_bytes'])} | {sc['rungs'] or '-'} | {'agree' if c['answers_agree'] else '**differ**'} |")  # fmt: skip
    errors = [
        (c["question"], side, c[side]["error"])
        for c in cases
        for side in ("sidecar", "plain")
        if c[side]["error"]
    ]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {q} ({side}): `{e[:200]}`" for q, side, e in errors]
    return "\n".join(lines) + "\n"


def compare_table(cmp: dict[str, Any]) -> str:
    rule = cmp["rule"]
    lines = [(f"Baseline `{cmp['baseline']['run_id']}` against candidate `{cmp['candidate']['run_id']}` (sidecar side). "
             f"Rule: ratio > {rule['threshold']:.2f} (per class: {rule['class_thresholds'] or 'none'}) and "
             f"+{rule['floor_ms']:.0f} ms and (Mann-Whitney p <= 0.05 or disjoint ranges); newly failing always. "
             f"Regressions: **{cmp['regressions']}**, improvements: {cmp['improvements']}."), ""]  # fmt: skip
    lines += [f"- {n}" for n in cmp["notes"]] + [""]
    lines += ["| question | size | budget | baseline ms | candidate ms | ratio | verdict | evidence | re-run |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for v in cmp["cases"]:
        verdict = f"**{v['verdict']}**" if v["verdict"] in ("regression", "newly_failing") else v["verdict"]
        ratio = "-" if v["ratio"] is None else f"{v['ratio']:.2f}"
        evidence = v["test"] if v["p_value"] is None else f"{v['test']}, p={v['p_value']:.3g}"
        lines.append(f"| {v['question']} | {_size(v['size_bytes'])} | {_size(v['budget_bytes'])} | "
                     f"{_ms(v['baseline_median_ms'])} | {_ms(v['candidate_median_ms'])} | {ratio} | {verdict} "
                     f"| {evidence} | {'yes' if v['rerun'] else '-'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


# ---- charts ------------------------------------------------------------------------------------


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def charts(cases: list[dict[str, Any]], cmp: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Chart name -> PNG bytes; only the charts the data can fill (sizes, budgets, a comparison)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    unlimited = [c for c in cases if c["budget_bytes"] is None]  # the memory suite's "no limit" runs
    timed = unlimited if unlimited and len(unlimited) < len(cases) else cases
    by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in timed:
        by_class[c["cls"]].append(c)
    if len({c["size_bytes"] for c in cases}) > 1:
        classes = sorted(by_class)
        cols = min(3, len(classes))
        rows = (len(classes) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
        for ax, cls in zip(axes.flat, classes):
            for q in sorted({c["question"] for c in by_class[cls]}):
                pts = sorted((c["size_bytes"], c) for c in by_class[cls] if c["question"] == q)
                for side, style in (("sidecar", "-o"), ("plain", "--s")):
                    xy = [(s, c[side]["median_ms"]) for s, c in pts if c[side]["median_ms"]]
                    if xy:
                        ax.plot(*zip(*xy), style, label=f"{q} {side}", markersize=3)
            ax.set(xscale="log", yscale="log", title=cls, xlabel="input bytes", ylabel="median ms")
            ax.legend(fontsize=6)
        for ax in list(axes.flat)[len(classes) :]:
            ax.axis("off")
        fig.tight_layout()
        out["time_vs_size"] = _png(fig)
    budgeted = [c for c in cases if c["budget_bytes"] is not None]
    if len({c["budget_bytes"] for c in budgeted}) > 1:
        for key, title in (("peak_rss_bytes", "peak RSS"), ("spill_bytes", "spill")):
            fig, ax = plt.subplots(figsize=(6, 4))
            for q in sorted({c["question"] for c in budgeted}):
                pts = sorted((c["budget_bytes"], c) for c in budgeted if c["question"] == q)
                for side, style in (("sidecar", "-o"), ("plain", "--s")):
                    ok = [
                        (b, max(1, c[side][key])) for b, c in pts if c[side]["status"] == "ok"
                    ]  # a refused run has no peak
                    if ok:
                        ax.plot(*zip(*ok), style, label=f"{q} {side}", markersize=3)
            lims = [min(c["budget_bytes"] for c in budgeted), max(c["budget_bytes"] for c in budgeted)]
            if key == "peak_rss_bytes":
                ax.plot(lims, lims, ":", color="grey", label="= budget")
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="budget bytes",
                ylabel=f"{title} bytes",
                title=f"{title} against the budget",
            )
            ax.legend(fontsize=6)
            out[f"{key.split('_bytes')[0]}_vs_budget"] = _png(fig)
    ratios = [c for c in cases if c["ratio"] is not None]
    if ratios:
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(ratios)), 3.5))
        labels = [f"{c['question']}@{_size(c['size_bytes'])}" for c in ratios]
        ax.bar(range(len(ratios)), [c["ratio"] for c in ratios], color="tab:blue")
        ax.axhline(1.0, color="grey", linestyle=":")
        ax.set_xticks(range(len(ratios)), labels, rotation=70, fontsize=7)
        ax.set(ylabel="sidecar / plain (median time)", title="sidecar against plain DuckDB")
        out["ratio_per_question"] = _png(fig)
    if cmp is not None:
        judged = [v for v in cmp["cases"] if v["ratio"] is not None]
        if judged:
            fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(judged)), 3.5))
            mid = [v["ratio"] for v in judged]
            low = [v["ratio"] - min(v["candidate_ms"]) / max(v["baseline_ms"]) for v in judged]
            high = [max(v["candidate_ms"]) / min(v["baseline_ms"]) - v["ratio"] for v in judged]
            colors = [
                "tab:red"
                if v["verdict"] == "regression"
                else "tab:green"
                if v["verdict"] == "improvement"
                else "tab:grey"
                for v in judged
            ]
            ax.bar(
                range(len(judged)),
                mid,
                yerr=[[max(0, x) for x in low], [max(0, x) for x in high]],
                color=colors,
                capsize=3,
            )
            ax.axhline(cmp["rule"]["threshold"], color="tab:red", linestyle=":", label="threshold")
            ax.axhline(1.0, color="grey", linestyle=":")
            ax.set_xticks(
                range(len(judged)),
                [f"{v['question']}@{_size(v['size_bytes'])}" for v in judged],
                rotation=70,
                fontsize=7,
            )
            ax.set(ylabel="candidate / baseline", title="comparison: median ratio, bar = range")
            ax.legend(fontsize=7)
            out["compare_ratio"] = _png(fig)
    return out


# ---- documents ---------------------------------------------------------------------------------


def markdown(
    run: dict[str, Any], cases: list[dict[str, Any]], cmp: dict[str, Any] | None, chart_dir: Path | None
) -> str:
    """The report as Markdown; with `chart_dir` (and matplotlib) the charts are written there and linked."""
    parts = [f"# Benchmark {run['run_id']}", "", run_table(run, cases)]
    if cmp is not None:
        parts += ["## Comparison", "", compare_table(cmp)]
    if chart_dir is not None:
        if have_matplotlib():
            chart_dir.mkdir(parents=True, exist_ok=True)
            for name, png in charts(cases, cmp).items():
                (chart_dir / f"{name}.png").write_bytes(png)
                parts += [f"![{name}]({chart_dir.name}/{name}.png)", ""]
        else:
            parts += [f"Charts need matplotlib: {CHARTS_EXTRA}.", ""]
    return "\n".join(parts)


def _md_table_to_html(text: str) -> str:
    out, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                rows.append([html.escape(c.strip()).replace("**", "") for c in line.strip("|").split("|")])
            continue
        if rows:
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in rows[0]) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:]) + "</table>")  # fmt: skip
            rows = []
        if line.strip():
            out.append(f"<p>{html.escape(line).replace('`', '')}</p>")
    return "\n".join(out)


def html_page(run: dict[str, Any], cases: list[dict[str, Any]], cmp: dict[str, Any] | None) -> str:
    """One self-contained HTML file: the tables, and the charts as base64 PNGs."""
    body = [f"<h1>Benchmark {html.escape(run['run_id'])}</h1>", _md_table_to_html(run_table(run, cases))]
    if cmp is not None:
        body += ["<h2>Comparison</h2>", _md_table_to_html(compare_table(cmp))]
    if have_matplotlib():
        for name, png in charts(cases, cmp).items():
            body.append(f'<h3>{name.replace("_", " ")}</h3><img alt="{name}" src="data:image/png;base64,'
                        f'{base64.b64encode(png).decode()}">')  # fmt: skip
    else:
        body.append(f"<p><strong>Charts need matplotlib:</strong> {html.escape(CHARTS_EXTRA)}.</p>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}")  # fmt: skip
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Benchmark {html.escape(run['run_id'])}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")  # fmt: skip
